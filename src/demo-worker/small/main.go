// corral's small worker: the worker protocol (docs/worker-protocol.md) exactly as the Node demo
// worker (src/demo-worker/demo-worker.ts and main.ts) speaks it, in a few MB per process instead
// of ~50 MB, for fleets of hundreds of local workers. Same routes, bodies, status codes and limits:
//
//	GET  /healthz   200 while it serves, with the protocol version so corral can spot impostors
//	POST /activate  {workerId, epoch, tenant}; refuses an epoch lower than the highest it has seen
//	POST /drain     {workerId, epoch} (both optional): stop accepting activations; answers whether
//	                the worker is drained (it finished its work) or still draining
//
// Credentials are read from the mounted file on every activation (they rotate underneath it) and
// never echoed: the answer carries only their version. test/integration/demo-worker.test.ts runs
// one set of protocol assertions against both workers, so they cannot drift apart.
package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// protocolVersion is never written here: the build (src/demo-worker/small-worker-build.ts) passes
// the constant of src/common/worker-protocol.ts with -ldflags "-X main.protocolVersion=...".
var protocolVersion string

const (
	name           = "corral-small-worker"
	maxBodyBytes   = 64 * 1024
	maxSafeInteger = 1<<53 - 1
	maxIDLength    = 128
)

type reply struct {
	status int
	body   []field
	// answerTo: v2, the key and request proof the answer's own proof is bound to.
	answerTo *answerTo
}

type answerTo struct {
	key   []byte
	proof string
}

func errorReply(status int, code string, more ...field) reply {
	return reply{status, append([]field{{"error", code}}, more...), nil}
}

type worker struct {
	workerID        jsString
	credentialsFile string

	mu           sync.Mutex
	highestEpoch int64
	tenant       jsString // nil (null) while the worker is warm and unclaimed
	draining     bool
	// protocolKey is set by the first credentials file carrying one and never unset: v2 for good.
	protocolKey []byte
	replays     replayGuard
}

func nullable(s jsString) any {
	if s == nil {
		return nil
	}
	return s
}

// typeOf names a value the way zod's messages do.
func typeOf(v any, present bool) string {
	switch v := v.(type) {
	case nil:
		if !present {
			return "undefined"
		}
		return "null"
	case bool:
		return "boolean"
	case float64:
		if math.IsNaN(v) {
			return "NaN"
		}
		return "number"
	case jsString:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}

// checkString is z.string().min(1).max(128): the first failing check's message, or "".
func checkString(v any, present bool) (jsString, string) {
	s, ok := v.(jsString)
	switch {
	case !ok:
		return nil, "Invalid input: expected string, received " + typeOf(v, present)
	case len(s) < 1:
		return nil, "Too small: expected string to have >=1 characters"
	case len(s) > maxIDLength:
		return nil, "Too big: expected string to have <=" + strconv.Itoa(maxIDLength) + " characters"
	}
	return s, ""
}

// checkInt is z.number().int() (a finite, safe integer).
func checkInt(v any, present bool) (int64, string) {
	f, ok := v.(float64)
	switch {
	case !ok || math.IsNaN(f) || math.IsInf(f, 0):
		return 0, "Invalid input: expected number, received " + typeOf(v, present)
	case f != math.Trunc(f):
		return 0, "Invalid input: expected int, received number"
	case f > maxSafeInteger:
		return 0, "Too big: expected int to be <" + strconv.Itoa(maxSafeInteger)
	case f < -maxSafeInteger:
		return 0, "Too small: expected int to be >-" + strconv.Itoa(maxSafeInteger)
	}
	return int64(f), ""
}

type activation struct {
	workerID jsString
	epoch    int64
	tenant   jsString
}

// parseActivation is the demo worker's z.strictObject: the first issue zod reports (fields in
// shape order, then unknown keys) as its field and message. withTenant false: v2's drain body.
func parseActivation(body any, present bool, withTenant bool) (activation, string, jsString) {
	obj, ok := body.(*jsObject)
	if !ok {
		return activation{}, "body", fromGo("Invalid input: expected object, received " + typeOf(body, present))
	}
	var a activation
	v, has := obj.get("workerId")
	if s, msg := checkString(v, has); msg != "" {
		return a, "workerId", fromGo(msg)
	} else {
		a.workerID = s
	}
	v, has = obj.get("epoch")
	if n, msg := checkInt(v, has); msg != "" {
		return a, "epoch", fromGo(msg)
	} else if n < 1 {
		return a, "epoch", fromGo("Too small: expected number to be >=1")
	} else {
		a.epoch = n
	}
	if v, has = obj.get("tenant"); withTenant && (!has || v != nil) {
		s, msg := checkString(v, has)
		if msg != "" {
			return a, "tenant", fromGo(msg)
		}
		a.tenant = s
	}
	var unknown []jsString
	for _, k := range obj.ownKeys() {
		if !k.equal(fromGo("workerId")) && !k.equal(fromGo("epoch")) && (!withTenant || !k.equal(fromGo("tenant"))) {
			// zod's joinValues: each key in double quotes, not escaped.
			unknown = append(unknown, append(append(jsString{'"'}, k...), '"'))
		}
	}
	if len(unknown) > 0 {
		msg := fromGo("Unrecognized key: ")
		if len(unknown) > 1 {
			msg = fromGo("Unrecognized keys: ")
		}
		for i, k := range unknown {
			if i > 0 {
				msg = append(msg, ',', ' ')
			}
			msg = append(msg, k...)
		}
		return a, "body", msg
	}
	return a, "", nil
}

// credentialVersion reads the mounted credentials file (z.object of epoch, version, expiresAt and
// a non-empty token; other keys allowed) and returns only its version.
func (wk *worker) credentialVersion() (int64, bool) {
	raw, err := os.ReadFile(wk.credentialsFile)
	if err != nil {
		return 0, false
	}
	parsed, err := parseJSON(decodeUTF8(raw))
	if err != nil {
		return 0, false
	}
	obj, ok := parsed.(*jsObject)
	if !ok {
		return 0, false
	}
	epoch, hasEpoch := obj.get("epoch")
	version, hasVersion := obj.get("version")
	expiresAt, _ := obj.get("expiresAt")
	token, _ := obj.get("token")
	_, epochProblem := checkInt(epoch, hasEpoch)
	n, versionProblem := checkInt(version, hasVersion)
	_, expiresOK := expiresAt.(jsString)
	tokenText, tokenOK := token.(jsString)
	if epochProblem != "" || versionProblem != "" || !expiresOK || !tokenOK || len(tokenText) == 0 {
		return 0, false
	}
	// v2: the worker's key, 64 lower-case hex digits, if present.
	var key []byte
	if k, has := obj.get("protocolKey"); has {
		text, isString := k.(jsString)
		if !isString || !proofText.Match(toUTF8(text)) {
			return 0, false
		}
		key, _ = hex.DecodeString(string(toUTF8(text)))
	}
	if key != nil {
		wk.mu.Lock()
		wk.protocolKey = key
		wk.mu.Unlock()
	}
	return n, true
}

// refusal is the answer to an activation the worker's state refuses, if it does. Holds wk.mu.
func (wk *worker) refusal(epoch int64) (reply, bool) {
	if wk.draining {
		return errorReply(409, "draining"), true
	}
	if epoch < wk.highestEpoch {
		return errorReply(409, "stale_epoch", field{"highestEpoch", wk.highestEpoch}), true
	}
	return reply{}, false
}

func (wk *worker) activate(body any, present bool) reply {
	request, problem, message := parseActivation(body, present, true)
	if problem != "" {
		return errorReply(400, "invalid_request", field{"field", problem}, field{"message", message})
	}
	if !request.workerID.equal(wk.workerID) {
		return errorReply(409, "wrong_worker", field{"workerId", wk.workerID})
	}
	wk.mu.Lock()
	refused, ok := wk.refusal(request.epoch)
	wk.mu.Unlock()
	if ok {
		return refused
	}
	version, ok := wk.credentialVersion()
	if !ok {
		return errorReply(503, "credentials_unavailable")
	}
	wk.mu.Lock()
	defer wk.mu.Unlock()
	// Checked again after the read: a drain or a higher activation may have come in meanwhile.
	if refused, ok := wk.refusal(request.epoch); ok {
		return refused
	}
	wk.highestEpoch, wk.tenant = request.epoch, request.tenant
	return reply{200, []field{
		{"workerId", wk.workerID}, {"epoch", wk.highestEpoch}, {"tenant", nullable(wk.tenant)},
		{"credentialVersion", version},
	}, nil}
}

// drain answers POST /drain: a body naming another worker, or an epoch below the highest this
// worker has seen, is refused (a neighbour or a stale actor cannot drain it); anything else starts
// the drain. This worker holds no work of its own, so it is drained at once.
func (wk *worker) drain(body any) reply {
	if obj, ok := body.(*jsObject); ok {
		if id, has := obj.get("workerId"); has {
			if s, isString := id.(jsString); isString && !s.equal(wk.workerID) {
				return errorReply(409, "wrong_worker", field{"workerId", wk.workerID})
			}
		}
		wk.mu.Lock()
		defer wk.mu.Unlock()
		if epoch, has := obj.get("epoch"); has {
			if f, isNumber := epoch.(float64); isNumber && f < float64(wk.highestEpoch) {
				return errorReply(409, "stale_epoch", field{"highestEpoch", wk.highestEpoch})
			}
		}
	} else {
		wk.mu.Lock()
		defer wk.mu.Unlock()
	}
	wk.draining = true
	return reply{200, []field{{"status", "draining"}, {"workerId", wk.workerID}, {"drained", true}}, nil}
}

// proven answers v2's /activate and /drain: the proof first (401), then the body (400), then the
// worker's state (409).
func (wk *worker) proven(key []byte, path string, body any, present bool, proof proofFields, raw []byte) reply {
	now := time.Now().Unix()
	if refusal := checkProof(key, "POST", path, proof.timestamp, proof.nonce, proof.proof, raw, now); refusal != "" {
		return errorReply(401, refusal)
	}
	ts, _ := strconv.ParseInt(proof.timestamp, 10, 64)
	if !wk.replays.accept(proof.proof, ts, now) {
		return errorReply(401, "proof_replayed")
	}
	var r reply
	if path == "/activate" {
		r = wk.activate(body, present)
	} else if _, problem, message := parseActivation(body, present, false); problem != "" {
		r = errorReply(400, "invalid_request", field{"field", problem}, field{"message", message})
	} else {
		r = wk.drain(body)
	}
	r.answerTo = &answerTo{key, proof.proof}
	return r
}

// proofFields are v2's request headers.
type proofFields struct{ timestamp, nonce, proof string }

func (wk *worker) handle(method, path string, body any, present bool, proof proofFields, raw []byte) reply {
	stateChanging := method == "POST" && (path == "/activate" || path == "/drain")
	if stateChanging || (method == "GET" && path == "/healthz") {
		wk.credentialVersion() // latches the protocol key
	}
	wk.mu.Lock()
	key := wk.protocolKey
	wk.mu.Unlock()
	if key != nil && stateChanging {
		return wk.proven(key, path, body, present, proof, raw)
	}
	switch {
	case method == "GET" && path == "/healthz":
		wk.mu.Lock()
		defer wk.mu.Unlock()
		status := "serving"
		if wk.draining {
			status = "draining"
		}
		if key != nil {
			// Nothing a neighbour can use: no id, no epoch, no tenant. A signed probe (corral's health
			// check) also gets the worker's proof on the answer: who answers, without saying it.
			r := reply{200, []field{{"status", status}, {"protocol", protocolV2}}, nil}
			if checkProof(key, method, path, proof.timestamp, proof.nonce, proof.proof, raw, time.Now().Unix()) == "" {
				r.answerTo = &answerTo{key, proof.proof}
			}
			return r
		}
		return reply{200, []field{
			{"status", status}, {"protocol", protocolVersion}, {"workerId", wk.workerID},
			{"highestEpoch", wk.highestEpoch}, {"tenant", nullable(wk.tenant)},
		}, nil}
	case method == "POST" && path == "/activate":
		return wk.activate(body, present)
	case method == "POST" && path == "/drain":
		return wk.drain(body)
	}
	return errorReply(404, "not_found")
}

func send(w http.ResponseWriter, r reply) {
	text := stringify(r.body)
	w.Header().Set("Content-Type", "application/json")
	if r.answerTo != nil {
		w.Header().Set("Corral-Proof", signAnswer(r.answerTo.key, r.answerTo.proof, text))
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(text)
}

// header is the value Node gives a custom header: repeated ones joined by ", ".
func header(r *http.Request, name string) string {
	return strings.Join(r.Header.Values(name), ", ")
}

// ServeHTTP reads one request's JSON body (bounded; on every route, as the demo worker does) and
// answers it.
func (wk *worker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if len(raw) > maxBodyBytes {
		w.Header().Set("Connection", "close")
		send(w, errorReply(413, "body_too_large"))
		return
	}
	if err != nil {
		// What Node's HTTP server answers a request whose body never arrives: 408 when it was too
		// slow, else 400; no JSON, and the connection closes.
		w.Header().Set("Connection", "close")
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			w.WriteHeader(http.StatusRequestTimeout)
		} else {
			w.WriteHeader(http.StatusBadRequest)
		}
		return
	}
	var body any
	present := len(raw) > 0
	if present {
		if body, err = parseJSON(decodeUTF8(raw)); err != nil {
			send(w, errorReply(400, "invalid_json"))
			return
		}
	}
	path, _, _ := strings.Cut(r.RequestURI, "?")
	proof := proofFields{header(r, "Corral-Timestamp"), header(r, "Corral-Nonce"), header(r, "Corral-Proof")}
	send(w, wk.handle(r.Method, path, body, present, proof, raw))
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
	os.Exit(code)
}

func required(variable string) string {
	value := os.Getenv(variable)
	if value == "" {
		fail(2, "environment variable %s is required", variable)
	}
	return value
}

func envOr(variable, fallback string) string {
	if value, ok := os.LookupEnv(variable); ok {
		return value
	}
	return fallback
}

func main() {
	if protocolVersion == "" || protocolV2 == "" {
		fail(2, "built without a protocol version (build it with src/demo-worker/small-worker-build.ts)")
	}
	portText := envOr("PORT", "8080")
	port := numberOf(portText)
	if port != math.Trunc(port) || port < 0 || port > 65_535 {
		fail(2, "PORT must be a port number, got %s", toUTF8(quote(fromGo(portText))))
	}
	// Simulates a slow image start (e.g. a database engine warming up); tests use it to act
	// while a spawn is still in progress.
	startDelayMs := numberOf(envOr("DEMO_WORKER_START_DELAY_MS", "0"))
	if startDelayMs != math.Trunc(startDelayMs) || startDelayMs < 0 || startDelayMs > 600_000 {
		fail(2, "DEMO_WORKER_START_DELAY_MS must be 0-600000, got %s", numberString(startDelayMs))
	}
	if startDelayMs > 0 {
		time.Sleep(time.Duration(startDelayMs) * time.Millisecond)
	}
	wk := &worker{
		workerID:        fromGo(required("CORRAL_WORKER_ID")),
		credentialsFile: required("CORRAL_CREDENTIALS_FILE"),
	}
	host := envOr("HOST", "0.0.0.0")
	network := "tcp" // dual-stack for "::" and "", like Node's listen
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		network = "tcp4"
	}
	listener, err := net.Listen(network, net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		fail(1, "%v", err)
	}
	// Bounded request handling, as the demo worker's: a stuck client cannot hold a connection forever.
	server := &http.Server{
		Handler:           wk,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       5 * time.Second,
		MaxHeaderBytes:    16 * 1024,
	}
	fmt.Printf("%s %s listening on port %d\n", name, os.Getenv("CORRAL_WORKER_ID"), listener.Addr().(*net.TCPAddr).Port)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	select {
	case sig := <-signals:
		signal.Reset(syscall.SIGTERM, syscall.SIGINT) // once, like process.once: a second signal is fatal
		fmt.Printf("%s: %s, shutting down\n", name, map[os.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT"}[sig])
		_ = server.Close() // every connection at once, like closeAllConnections + close
		os.Exit(0)
	case err := <-served:
		fail(1, "%v", err)
	}
}
