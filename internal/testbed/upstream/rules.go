package upstream

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"path"
	"strconv"
	"strings"
)

// A Suite is one of pgx's test suites: where it is in pgx's module and the
// rules that rewrite it to an adapter.
type Suite struct {
	// Name is the suite's name in expected.txt and its directory in the
	// temporary module.
	Name string
	// Dir is the suite's directory in pgx's module.
	Dir string
	// Files are the glob patterns, under Dir, of the files copied.
	Files []string
	// Rules rewrite each copied file, in order.
	Rules []Rule
	// Extra are files added beside the suite: name and Go source.
	Extra map[string]string
	// Forbidden are import paths that must be gone from every file once
	// the rules ran (the suite would test pgx instead of the adapter).
	Forbidden []string
}

// A Rule is one mechanical rewrite of a suite's file.
type Rule struct {
	// Why says what the rule does and why it keeps the test's meaning.
	Why string
	// Apply rewrites f and returns how many places it changed.
	Apply func(f *ast.File) int
}

// pgmockPath is where pgx's internal pgmock package is copied, beside the
// suites in the temporary module.
const pgmockPath = modulePath + "/internal/pgmock"

// Suites are the suites run: pgxpool's against pgxadapter, stdlib's
// sql_test.go against sqladapter's "runpool" driver.
var Suites = []Suite{
	{
		Name:  "pgxpool",
		Dir:   "pgxpool",
		Files: []string{"*_test.go"},
		Rules: []Rule{
			{
				Why: `import "github.com/jackc/pgx/v5/pgxpool" becomes pgxpool "github.com/runpool/runpool/pgxadapter": ` +
					"the one change a pgxpool user makes; every identifier stays",
				Apply: importPath("github.com/jackc/pgx/v5/pgxpool", "github.com/runpool/runpool/pgxadapter", "pgxpool"),
			},
			{
				Why:   "pgx's internal pgmock (a scripted fake server for the tests of malformed replies) is copied beside the suite",
				Apply: importPath("github.com/jackc/pgx/v5/internal/pgmock", pgmockPath, ""),
			},
		},
		Forbidden: []string{"github.com/jackc/pgx/v5/pgxpool"},
	},
	{
		Name:  "stdlib",
		Dir:   "stdlib",
		Files: []string{"sql_test.go"},
		Rules: []Rule{
			{
				Why:   `sql.Open("pgx", dsn) and sql.Open("pgx/v5", dsn) become sql.Open("runpool", dsn): the driver name sqladapter registers`,
				Apply: driverName,
			},
			{
				Why: "stdlib.OpenDB(config) becomes runpoolOpenDB(config) (helpers_test.go): sql.Open(\"runpool\", dsn) " +
					"with the test's exec mode as default_query_exec_mode in the DSN; it panics if the test changed anything else",
				Apply: renameCall("stdlib", "OpenDB", "runpoolOpenDB"),
			},
			{
				Why:   "stdlib.OptionOpenDB becomes any in openDB's signature; the tests that pass options are in expected.txt",
				Apply: renameType("stdlib", "OptionOpenDB", "any"),
			},
			{
				Why: "a Raw callback's assertion to *stdlib.Conn becomes one to interface{ Conn() *pgx.Conn }, " +
					"which both *stdlib.Conn and sqladapter's connection satisfy (docs/migrating-database-sql.md)",
				Apply: assertConn,
			},
		},
		Extra:     map[string]string{"helpers_test.go": stdlibHelpers},
		Forbidden: []string{"github.com/jackc/pgx/v5/stdlib"},
	},
}

// Rewrite applies s's rules to one file's source, replaces the body of
// every test in skips (name to reason) with t.Skip(reason), drops the
// imports that are no longer used, and checks that no forbidden import is
// left.
func (s Suite) Rewrite(name string, src []byte, skips map[string]string) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	for _, r := range s.Rules {
		r.Apply(f)
	}
	skipTests(f, skips)
	dropUnusedImports(f)
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		for _, bad := range s.Forbidden {
			if p == bad {
				return nil, fmt.Errorf("%s: %s is still imported after the rewrite", name, bad)
			}
		}
	}
	var buf bytes.Buffer
	if err := format.Node(&buf, fset, f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// TestNames returns the top-level tests (func TestX(t *testing.T)) in src.
func TestNames(name string, src []byte) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), name, src, 0)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && isTest(fd) {
			names = append(names, fd.Name.Name)
		}
	}
	return names, nil
}

func isTest(fd *ast.FuncDecl) bool {
	return fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Test") && fd.Name.Name != "TestMain" &&
		fd.Type.Params != nil && len(fd.Type.Params.List) == 1
}

// importPath changes the import of from to to, named name when name is
// not to's last element.
func importPath(from, to, name string) func(*ast.File) int {
	return func(f *ast.File) int {
		n := 0
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p != from {
				continue
			}
			imp.Path.Value = strconv.Quote(to)
			if name != "" && name != path.Base(to) && imp.Name == nil {
				imp.Name = ast.NewIdent(name)
			}
			n++
		}
		return n
	}
}

// driverName makes sql.Open("pgx"...) and sql.Open("pgx/v5"...) open the
// "runpool" driver.
func driverName(f *ast.File) int {
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		call, ok := node.(*ast.CallExpr)
		if !ok || !isSelector(call.Fun, "sql", "Open") || len(call.Args) == 0 {
			return true
		}
		if lit, ok := call.Args[0].(*ast.BasicLit); ok && (lit.Value == `"pgx"` || lit.Value == `"pgx/v5"`) {
			lit.Value = `"runpool"`
			n++
		}
		return true
	})
	return n
}

// renameCall replaces calls of pkg.fn by calls of the function to.
func renameCall(pkg, fn, to string) func(*ast.File) int {
	return func(f *ast.File) int {
		n := 0
		ast.Inspect(f, func(node ast.Node) bool {
			if call, ok := node.(*ast.CallExpr); ok && isSelector(call.Fun, pkg, fn) {
				call.Fun = ast.NewIdent(to)
				n++
			}
			return true
		})
		return n
	}
}

// renameType replaces the type pkg.name, in parameter lists, by to.
func renameType(pkg, name, to string) func(*ast.File) int {
	return func(f *ast.File) int {
		n := 0
		ast.Inspect(f, func(node ast.Node) bool {
			fl, ok := node.(*ast.FieldList)
			if !ok {
				return true
			}
			for _, field := range fl.List {
				if isSelector(field.Type, pkg, name) {
					field.Type = ast.NewIdent(to)
					n++
				}
				if el, ok := field.Type.(*ast.Ellipsis); ok && isSelector(el.Elt, pkg, name) {
					el.Elt = ast.NewIdent(to)
					n++
				}
			}
			return true
		})
		return n
	}
}

// assertConn makes x.(*stdlib.Conn) assert interface{ Conn() *pgx.Conn }.
func assertConn(f *ast.File) int {
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		ta, ok := node.(*ast.TypeAssertExpr)
		if !ok {
			return true
		}
		if star, ok := ta.Type.(*ast.StarExpr); ok && isSelector(star.X, "stdlib", "Conn") {
			ta.Type = connInterface()
			n++
		}
		return true
	})
	return n
}

// connInterface is the type interface{ Conn() *pgx.Conn }, built without
// positions so that it prints on one line wherever it goes.
func connInterface() ast.Expr {
	method := &ast.Field{
		Names: []*ast.Ident{ast.NewIdent("Conn")},
		Type: &ast.FuncType{Params: &ast.FieldList{}, Results: &ast.FieldList{List: []*ast.Field{{
			Type: &ast.StarExpr{X: &ast.SelectorExpr{X: ast.NewIdent("pgx"), Sel: ast.NewIdent("Conn")}},
		}}}},
	}
	return &ast.InterfaceType{Methods: &ast.FieldList{List: []*ast.Field{method}}}
}

// skipTests replaces the body of each test in skips by t.Skip(reason).
func skipTests(f *ast.File, skips map[string]string) {
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || !isTest(fd) {
			continue
		}
		reason, ok := skips[fd.Name.Name]
		if !ok {
			continue
		}
		param := fd.Type.Params.List[0]
		if len(param.Names) == 0 || param.Names[0].Name == "_" {
			param.Names = []*ast.Ident{ast.NewIdent("t")}
		}
		t := param.Names[0].Name
		skip := &ast.CallExpr{
			Fun:  &ast.SelectorExpr{X: ast.NewIdent(t), Sel: ast.NewIdent("Skip")},
			Args: []ast.Expr{&ast.BasicLit{Kind: token.STRING, Value: strconv.Quote("expected.txt: " + reason)}},
		}
		dropComments(f, fd.Body.Lbrace, fd.Body.Rbrace)
		fd.Body = &ast.BlockStmt{Lbrace: fd.Body.Lbrace, List: []ast.Stmt{&ast.ExprStmt{X: skip}}, Rbrace: fd.Body.Lbrace + 1}
	}
}

// dropComments removes the comments between from and to, the body of a
// skipped test.
func dropComments(f *ast.File, from, to token.Pos) {
	var keep []*ast.CommentGroup
	for _, cg := range f.Comments {
		if cg.Pos() < from || cg.End() > to {
			keep = append(keep, cg)
		}
	}
	f.Comments = keep
}

// dropUnusedImports removes the imports no identifier of f refers to any
// more (blank and dot imports are kept).
func dropUnusedImports(f *ast.File) {
	used := map[string]bool{}
	ast.Inspect(f, func(node ast.Node) bool {
		if sel, ok := node.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				used[id.Name] = true
			}
		}
		return true
	})
	keep := func(imp *ast.ImportSpec) bool {
		if imp.Name != nil {
			return imp.Name.Name == "_" || imp.Name.Name == "." || used[imp.Name.Name]
		}
		p, _ := strconv.Unquote(imp.Path.Value)
		return used[importName(p)]
	}
	var imports []*ast.ImportSpec
	for _, imp := range f.Imports {
		if keep(imp) {
			imports = append(imports, imp)
		}
	}
	f.Imports = imports
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.IMPORT {
			continue
		}
		var specs []ast.Spec
		for _, s := range gd.Specs {
			if keep(s.(*ast.ImportSpec)) {
				specs = append(specs, s)
			}
		}
		gd.Specs = specs
	}
}

// importName is the package name of an import path without a name: its
// last element, less a major-version suffix.
func importName(p string) string {
	base := path.Base(p)
	if len(base) > 1 && base[0] == 'v' && strings.Trim(base[1:], "0123456789") == "" {
		base = path.Base(path.Dir(p))
	}
	return base
}

func isSelector(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

// stdlibHelpers is added beside stdlib's suite: what its rules call.
const stdlibHelpers = `package stdlib_test

import (
	"database/sql"
	"os"
	"reflect"
	"strings"

	"github.com/jackc/pgx/v5"
	_ "github.com/runpool/runpool/sqladapter"
)

var runpoolModes = map[pgx.QueryExecMode]string{
	pgx.QueryExecModeCacheStatement: "cache_statement",
	pgx.QueryExecModeCacheDescribe:  "cache_describe",
	pgx.QueryExecModeDescribeExec:   "describe_exec",
	pgx.QueryExecModeExec:           "exec",
	pgx.QueryExecModeSimpleProtocol: "simple_protocol",
}

// runpoolOpenDB stands for stdlib.OpenDB: sql.Open("runpool", dsn) on
// PGX_TEST_DATABASE, with config's exec mode in the DSN. A DSN carries no
// other change to config, nor stdlib's options: it panics on either.
func runpoolOpenDB(config pgx.ConnConfig, opts ...any) *sql.DB {
	if len(opts) > 0 {
		panic("runpoolOpenDB: stdlib.OpenDB's options have no DSN form")
	}
	dsn := os.Getenv("PGX_TEST_DATABASE")
	if m := config.DefaultQueryExecMode; m != pgx.QueryExecModeCacheStatement {
		sep := " "
		if strings.Contains(dsn, "://") {
			sep = "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
		}
		dsn += sep + "default_query_exec_mode=" + runpoolModes[m]
	}
	want, err := pgx.ParseConfig(dsn)
	if err != nil {
		panic(err)
	}
	if config.Host != want.Host || config.Port != want.Port || config.Database != want.Database ||
		config.User != want.User || config.Tracer != nil || config.DefaultQueryExecMode != want.DefaultQueryExecMode ||
		config.StatementCacheCapacity != want.StatementCacheCapacity ||
		config.DescriptionCacheCapacity != want.DescriptionCacheCapacity ||
		!reflect.DeepEqual(config.RuntimeParams, want.RuntimeParams) {
		panic("runpoolOpenDB: the test changed its pgx.ConnConfig beyond the exec mode")
	}
	db, err := sql.Open("runpool", dsn)
	if err != nil {
		panic(err)
	}
	return db
}
`
