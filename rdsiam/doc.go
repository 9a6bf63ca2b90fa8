// Package rdsiam logs in to Amazon RDS, Aurora and RDS Proxy with IAM
// database authentication: each dial sends, as the password, an
// authentication token signed with the process's AWS credentials
// (github.com/aws/aws-sdk-go-v2/feature/rds/auth), not a stored secret.
//
// A token is valid for 15 minutes, and no longer than the credentials that
// signed it (a role session may end sooner). An [Auth] reuses one token
// for every dial while it is valid and signs the next one before it or its
// credentials expire, so a token past its validity is never sent;
// concurrent dials that find the token due wait for one signing, not one
// each. [Connect] renews a token the server refuses and dials once more:
// a role session can end early, and an IAM login refused under a burst
// succeeds with the next token.
//
// The token is a bearer credential for 15 minutes: it is sent only over a
// connection that checks the server's certificate (sslmode=verify-full or
// verify-ca, see [CheckTLS]), and it appears in no error or log line of
// this package.
//
// The adapters use it when RUNPOOL_RDS_IAM_AUTH=true ([FromEnv], which
// needs package rdsiam/awsdefault imported for the AWS SDK's default
// configuration); with pgxpool, set pgxpool.Config.BeforeConnect to
// [Auth.BeforeConnect].
package rdsiam
