package main

// Checks the test vectors of docs/worker-protocol.md against this worker's proofs. Run by
// test/integration/worker-protocol-vectors.test.ts, which links the protocol name in as the build
// does (-ldflags "-X main.protocolV2=...").

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

type vector struct {
	WorkerID        string `json:"workerId"`
	Method          string `json:"method"`
	Path            string `json:"path"`
	Timestamp       string `json:"timestamp"`
	Nonce           string `json:"nonce"`
	Body            string `json:"body"`
	WorkerKey       string `json:"workerKey"`
	CanonicalString string `json:"canonicalString"`
	Proof           string `json:"proof"`
	AnswerBody      string `json:"answerBody"`
	AnswerProof     string `json:"answerProof"`
}

func TestVectors(t *testing.T) {
	if protocolV2 == "" {
		t.Fatal("run with -ldflags \"-X main.protocolV2=...\"")
	}
	doc, err := os.ReadFile("../../../docs/worker-protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- test-vectors:begin -->")
	_, rest, ok1 := strings.Cut(rest, "```json\n")
	block, _, ok2 := strings.Cut(rest, "\n```")
	if !ok || !ok1 || !ok2 {
		t.Fatal("no test-vectors block in docs/worker-protocol.md")
	}
	var file struct {
		MasterKey string   `json:"masterKey"`
		Vectors   []vector `json:"vectors"`
	}
	if err := json.Unmarshal([]byte(block), &file); err != nil {
		t.Fatal(err)
	}
	master, _ := hex.DecodeString(file.MasterKey)
	if len(master) != 32 || len(file.Vectors) == 0 {
		t.Fatal("bad vectors")
	}
	for i, v := range file.Vectors {
		key, _ := hex.DecodeString(hmacHex(master, protocolV2+"\n"+v.WorkerID))
		if hex.EncodeToString(key) != v.WorkerKey {
			t.Errorf("vector %d: workerKey %x, want %s", i, key, v.WorkerKey)
		}
		if got := canonicalString(v.Method, v.Path, v.Timestamp, v.Nonce, []byte(v.Body)); got != v.CanonicalString {
			t.Errorf("vector %d: canonical %q, want %q", i, got, v.CanonicalString)
		}
		now, _ := strconv.ParseInt(v.Timestamp, 10, 64)
		if refusal := checkProof(key, v.Method, v.Path, v.Timestamp, v.Nonce, v.Proof, []byte(v.Body), now); refusal != "" {
			t.Errorf("vector %d: the worker refuses the proof: %s", i, refusal)
		}
		if refusal := checkProof(key, v.Method, v.Path, v.Timestamp, v.Nonce, v.Proof, []byte(v.Body+" "), now); refusal != "proof_invalid" {
			t.Errorf("vector %d: another body: %q, want proof_invalid", i, refusal)
		}
		if refusal := checkProof(key, v.Method, v.Path, v.Timestamp, v.Nonce, v.Proof, []byte(v.Body), now+61); refusal != "proof_expired" {
			t.Errorf("vector %d: 61 s later: %q, want proof_expired", i, refusal)
		}
		if got := signAnswer(key, v.Proof, []byte(v.AnswerBody)); got != v.AnswerProof {
			t.Errorf("vector %d: answer proof %s, want %s", i, got, v.AnswerProof)
		}
	}
}
