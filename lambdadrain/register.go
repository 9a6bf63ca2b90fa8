package lambdadrain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Extensions API paths, relative to http://$AWS_LAMBDA_RUNTIME_API.
const (
	registerPath  = "/2020-01-01/extension/register"
	eventNextPath = "/2020-01-01/extension/event/next"

	headerName       = "Lambda-Extension-Name"
	headerIdentifier = "Lambda-Extension-Identifier"
)

// registerTimeout bounds the registration: it runs in Lambda's Init
// phase, which has a 10 s limit of its own.
const registerTimeout = 2 * time.Second

// RegisterError is a registration the Extensions API refused or did not
// answer. The function keeps working; no SIGTERM will come.
type RegisterError struct {
	Status int    // the HTTP status, 0 when there was no answer
	Type   string // Lambda's errorType, e.g. Extension.RegistrationClosed
	Err    error  // the transport error, when there was no answer
}

func (e *RegisterError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("lambdadrain: registering the extension: %v (no SIGTERM will come: see the package documentation)", e.Err)
	}
	return fmt.Sprintf("lambdadrain: the Extensions API refused the extension: %d %s (no SIGTERM will come: see the package documentation)", e.Status, e.Type)
}

func (e *RegisterError) Unwrap() error { return e.Err }

// apiClient talks to the Runtime API's extension endpoints, never through
// an HTTP proxy from the environment: the API is on a local address.
func apiClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &http.Client{Transport: tr}
}

// register registers an internal extension that subscribes to no event
// and returns its identifier.
func register(c *http.Client, addr, name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), registerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+registerPath, bytes.NewReader([]byte(`{"events":[]}`)))
	if err != nil {
		return "", &RegisterError{Err: err}
	}
	req.Header.Set(headerName, name)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return "", &RegisterError{Err: err}
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	if res.StatusCode != http.StatusOK {
		var e struct {
			Type string `json:"errorType"`
		}
		_ = json.Unmarshal(body, &e)
		return "", &RegisterError{Status: res.StatusCode, Type: e.Type}
	}
	id := res.Header.Get(headerIdentifier)
	if id == "" {
		return "", &RegisterError{Status: res.StatusCode, Type: "no " + headerIdentifier + " header"}
	}
	return id, nil
}

// awaitEvents makes the call that ends the extension's initialisation.
// With no event subscribed, Lambda never answers it; it returns only when
// the API goes away, which is reported to done.
func awaitEvents(c *http.Client, addr, id string, done func(error)) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+eventNextPath, nil)
	if err != nil {
		done(err)
		return
	}
	req.Header.Set(headerIdentifier, id)
	res, err := c.Do(req)
	if err != nil {
		done(err)
		return
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	done(fmt.Errorf("event/next answered %d", res.StatusCode))
}
