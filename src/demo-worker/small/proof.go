package main

// corral.worker/v2's proofs (docs/worker-protocol.md), as src/runtime/worker-protocol-proof.ts
// defines them: the canonical string, the request proof a worker checks, the replay guard, and
// the proof a worker puts on its answer to a proven call.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strconv"
	"sync"
)

// protocolV2 is linked in like protocolVersion (the constant of src/runtime/worker-protocol-proof.ts).
var protocolV2 string

const proofWindowSeconds = 60

var (
	timestampText = regexp.MustCompile(`^(0|[1-9][0-9]{0,15})$`)
	proofText     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	nonceText     = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func hmacHex(key []byte, message string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(message))
	return hex.EncodeToString(mac.Sum(nil))
}

// canonicalString is protocolV2, METHOD, PATH, TIMESTAMP, NONCE and hex(sha256(BODY)) joined by "\n".
func canonicalString(method, path, timestamp, nonce string, body []byte) string {
	return protocolV2 + "\n" + method + "\n" + path + "\n" + timestamp + "\n" + nonce + "\n" + sha256Hex(body)
}

func signRequest(key []byte, method, path, timestamp, nonce string, body []byte) string {
	return hmacHex(key, canonicalString(method, path, timestamp, nonce, body))
}

func signAnswer(key []byte, requestProof string, answer []byte) string {
	return hmacHex(key, protocolV2+"\nANSWER\n"+requestProof+"\n"+sha256Hex(answer))
}

// checkProof answers the refusal ("proof_missing", "proof_expired", "proof_invalid") or "".
func checkProof(key []byte, method, path, timestamp, nonce, proof string, body []byte, now int64) string {
	if timestamp == "" || nonce == "" || proof == "" {
		return "proof_missing"
	}
	if !timestampText.MatchString(timestamp) {
		return "proof_expired"
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || ts-now > proofWindowSeconds || now-ts > proofWindowSeconds {
		return "proof_expired"
	}
	if !proofText.MatchString(proof) || !nonceText.MatchString(nonce) {
		return "proof_invalid"
	}
	expected, _ := hex.DecodeString(signRequest(key, method, path, timestamp, nonce, body))
	given, _ := hex.DecodeString(proof)
	if !hmac.Equal(expected, given) {
		return "proof_invalid"
	}
	return ""
}

// replayGuard remembers the proofs accepted inside the window; only good proofs enter it.
type replayGuard struct {
	mu   sync.Mutex
	seen map[string]int64
}

func (g *replayGuard) accept(proof string, timestamp, now int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]int64{}
	}
	for p, until := range g.seen {
		if until < now {
			delete(g.seen, p)
		}
	}
	if _, ok := g.seen[proof]; ok {
		return false
	}
	g.seen[proof] = timestamp + proofWindowSeconds
	return true
}
