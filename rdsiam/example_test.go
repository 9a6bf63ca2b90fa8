package rdsiam_test

import (
	"context"
	"log"
	"os"

	_ "github.com/runpool/runpool/rdsiam/awsdefault" // RUNPOOL_RDS_IAM_AUTH's default AWS configuration

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/runpool/runpool/pgxadapter"
	"github.com/runpool/runpool/rdsiam"
)

// With runpool's adapters, the environment alone turns IAM authentication
// on:
//
//	DATABASE_URL=postgres://app@mydb.cluster-abc.eu-west-1.rds.amazonaws.com:5432/app?sslmode=verify-full&sslrootcert=/etc/ssl/rds-global-bundle.pem
//	RUNPOOL_RDS_IAM_AUTH=true
//	AWS_REGION=eu-west-1 (Lambda, ECS and EC2 supply the credentials)
func Example() {
	ctx := context.Background()
	pool, err := pgxadapter.NewFromEnv(ctx) // fails at once without region or credentials
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	var now string
	if err := pool.QueryRow(ctx, "SELECT now()::text").Scan(&now); err != nil {
		log.Fatal(err)
	}
}

// With pgxpool, the Auth sets each dial's password in BeforeConnect.
func ExampleAuth_BeforeConnect() {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	if err := rdsiam.CheckTLS(&cfg.ConnConfig.Config); err != nil {
		log.Fatal(err)
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	auth, err := rdsiam.New(rdsiam.Options{Region: awsCfg.Region, Credentials: awsCfg.Credentials})
	if err != nil {
		log.Fatal(err)
	}
	cfg.BeforeConnect = auth.BeforeConnect
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
}

// Connect dials with the token, and once more with a renewed one when
// the server refuses it.
func ExampleConnect() {
	ctx := context.Background()
	cc, err := pgx.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	auth, err := rdsiam.FromEnv(ctx, cc)
	if err != nil {
		log.Fatal(err)
	}
	conn, err := rdsiam.Connect(ctx, auth, cc, pgx.ConnectConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
}
