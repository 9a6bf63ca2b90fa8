package sqladapter

// Behind a transaction-mode pooler (runpool.Config.Pooler, see the root
// package's pooler.go) a named prepared statement exists only on the
// server connection that prepared it, and the next transaction may run
// on another. So there a sql.Stmt is not prepared by name: PrepareContext
// only describes the statement, through the unnamed statement, once per
// connection, and each execution sends the text in pgx's mode (the
// pooler mode sets describe-cached execution). Nothing is deallocated,
// since nothing named was created.
//
// Elsewhere a sql.Stmt is prepared by name whatever pgx's exec mode, as
// pgx's stdlib driver prepares it: the mode applies to statements run
// without one.
