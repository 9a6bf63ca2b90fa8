.PHONY: test demo deps

# Shorthands for the README's two commands.
deps:
	scripts/deps
test: deps
	scripts/test
demo: deps
	go run ./examples/simulate
