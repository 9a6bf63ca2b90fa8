package runpool

// Budget derivation, the start-up check and 53300 back-pressure live here
// (issue 4). For now MaxConns defaults as pgxpool's does.
