-- +goose Up
ALTER TABLE accounts ADD COLUMN balance numeric(12, 2) NOT NULL DEFAULT 0;

-- +goose StatementBegin
CREATE FUNCTION account_count() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM accounts;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION account_count();
ALTER TABLE accounts DROP COLUMN balance;
