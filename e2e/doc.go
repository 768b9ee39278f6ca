// Package e2e tests the socius binary from the outside, as an operator runs it: each
// test builds cmd/socius once, starts it as a child process on a temp data folder and
// loopback ports, and talks to it only over HTTP and HTTPS, with signals, and by reading
// the SQLite file it leaves behind.
//
// The package holds the tests that need a real process rather than the in-process
// server of cmd/socius's tests. The crash, shutdown, isolation and model tests run on
// both stores (the SQLite file, and PostgreSQL on package pgtest's throwaway server,
// directly and through a PgBouncer in transaction mode):
//
//   - crash safety: SIGKILL in the middle of concurrent writes, restart on the same data
//     folder, and every acknowledged write is there (crash_test.go);
//   - graceful shutdown on SIGTERM and SIGINT: calls in flight finish, new connections
//     are refused, the store is closed, the exit is clean and bounded (shutdown_test.go);
//   - tenant isolation: no credential of one site reads or writes a user of another
//     (isolation_test.go);
//   - hostile input: a table of malformed and malicious requests, each answered with its
//     intended code and none changing what is stored (hostile_test.go);
//   - the API model: random sequences of calls, with every kind of credential and the
//     tokens they obtain, each answer checked against an in-memory model of what the
//     API promises (model_test.go).
//
// It has no non-test code: this file exists for the package comment.
package e2e
