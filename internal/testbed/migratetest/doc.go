// Package migratetest checks that migration tools which take only a driver
// name and a DSN work through sql.Open("runpool", url): goose here. It is a
// module of its own so that goose stays out of runpool's go.mod;
// scripts/test runs its tests.
package migratetest
