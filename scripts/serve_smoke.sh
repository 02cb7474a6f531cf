#!/usr/bin/env bash
# `nanochat serve` from outside, with curl: the page, /health, a chat completion and a
# completion (whole and streamed), 16 streams at once decoded together, bad requests answered
# with OpenAI-shaped 4xx errors, and a client that leaves mid-stream freeing its slot; the
# server keeps serving through all of it. Runs on the main job's model (scripts/demo.sh).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
model=${1:-runs/shakespeare_d4}
port=${PORT:-8517}
need_nanochat
[ -d "$model" ] || { echo "no checkpoint $model: run scripts/demo.sh first" >&2; exit 1; }
W=$(mktemp -d)
url=http://127.0.0.1:$port
$nc serve --checkpoint "$model" --port $port --max-tokens 256 --max-body-bytes 65536 > "$W/server.log" 2>&1 &
server=$!
trap 'kill $server 2> /dev/null; wait $server 2> /dev/null; rm -rf "$W"' EXIT
for _ in $(seq 100); do curl -sf $url/health > /dev/null && break; sleep 0.1; done
curl -sf $url/health > /dev/null || { cat "$W/server.log"; echo "FAIL: the server did not start"; exit 1; }

# field FILE EXPR: a value from a JSON reply (python3's json, from the standard library).
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2> /dev/null; }
# post PATH BODY OUT: the HTTP status; the body goes to OUT.
post() { curl -s -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$2" $url$1; }
serving() { curl -sf $url/health > /dev/null || fail "the server stopped serving after $1"; }

# (Saved first: grep -q stopping early would cut curl's pipe, which pipefail counts.)
curl -s $url/ > $W/page.html
grep -q '<title>nanochat</title>' $W/page.html && echo "ok: the chat page" || fail "GET / is not the chat page"

code=$(post /v1/chat/completions '{"messages":[{"role":"user","content":"Who art thou?"}],"max_tokens":20,"temperature":0}' $W/chat.json)
[ "$code" = 200 ] && [ "$(field $W/chat.json 'd["object"], d["usage"]["completion_tokens"] > 0')" = "chat.completion True" ] \
    && echo "ok: chat completion: $(field $W/chat.json 'repr(d["choices"][0]["message"]["content"])')" || fail "chat completion: $code $(cat $W/chat.json)"

code=$(post /v1/completions '{"prompt":"ROMEO:","max_tokens":20,"temperature":0}' $W/text.json)
[ "$code" = 200 ] && echo "ok: completion: $(field $W/text.json 'repr(d["choices"][0]["text"])')" || fail "completion: $code"
curl -sN -H 'Content-Type: application/json' --data '{"prompt":"ROMEO:","max_tokens":20,"temperature":0,"stream":true}' \
    $url/v1/completions > $W/stream.txt
streamed=$(python3 -c "
import json, sys
events = [l[6:] for l in open(sys.argv[1]).read().split('\n') if l.startswith('data: ')]
assert events[-1] == '[DONE]', events[-1]
print(''.join(json.loads(e)['choices'][0]['text'] for e in events[:-1]))" $W/stream.txt 2>&1)
[ "$streamed" = "$(field $W/text.json 'd["choices"][0]["text"]')" ] \
    && echo "ok: the stream ($(grep -c '^data: ' $W/stream.txt) events) equals the whole completion" || fail "stream: $streamed"

# Scoring as evaluation harnesses do: echo + logprobs, max_tokens 0, two prompts in one request;
# each prompt's summed log-probabilities equal `nanochat eval --loglikelihood` on the same text.
code=$(post /v1/completions '{"prompt":["ROMEO: O, she doth teach the torches to burn bright!","JULIET: Good night, good night!"],"max_tokens":0,"echo":true,"logprobs":2}' $W/score.json)
printf '%s\n' '{"context": "", "continuation": "ROMEO: O, she doth teach the torches to burn bright!"}' \
    '{"context": "", "continuation": "JULIET: Good night, good night!"}' > $W/pairs.jsonl
$nc eval --checkpoint "$model" --loglikelihood $W/pairs.jsonl > $W/pairs.out 2> $W/pairs.err
scored=$(python3 -c "
import json, sys
reply = json.load(open(sys.argv[1]))
ours = [json.loads(l)['loglikelihood'] for l in open(sys.argv[2])]
served = [sum(c['logprobs']['token_logprobs']) for c in sorted(reply['choices'], key=lambda c: c['index'])]
texts = [c['text'] for c in reply['choices']]
gap = max(abs(a - b) for a, b in zip(served, ours))
ok = len(served) == len(ours) == 2 and gap < 1e-4 and texts[0].startswith('ROMEO') and reply['usage']['completion_tokens'] == 0
print(('' if ok else 'FAIL ') + f'{served[0]:.4f}, {served[1]:.4f} nats; eval --loglikelihood differs by {gap:.1e}')" $W/score.json $W/pairs.out 2>&1)
[ "$code" = 200 ] && [[ "$scored" != FAIL* ]] && echo "ok: echo + logprobs score two prompts: $scored" \
    || fail "scoring: $code $scored $(cat $W/pairs.err)"

# 16 streams at once: all end with [DONE], and the engine took fewer steps than tokens.
before=$(curl -s $url/health)
for i in $(seq 16); do
    curl -sN -H 'Content-Type: application/json' --data "{\"prompt\":\"ROMEO $i:\",\"max_tokens\":48,\"stream\":true,\"seed\":$i}" \
        $url/v1/completions > $W/many$i.txt &
done
wait $(jobs -p | grep -v "^$server$") 2> /dev/null
done16=$(grep -l '^data: \[DONE\]' $W/many*.txt | wc -l)
after=$(curl -s $url/health)
batching=$(python3 -c "
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
steps, made = b['steps'] - a['steps'], b['generated_tokens'] - a['generated_tokens']
print(f'{made} tokens in {steps} batched steps' if 0 < steps < made else f'FAIL {made} tokens in {steps} steps')" "$before" "$after")
[ "$done16" = 16 ] && [[ "$batching" != FAIL* ]] && echo "ok: 16 concurrent streams finished: $batching" || fail "16 streams: $done16 finished, $batching"

# Bad requests: OpenAI's error shape, a 4xx status, and the server goes on.
expect_error() {   # expect_error STATUS WORDS PATH BODY
    local code
    code=$(post "$3" "$4" $W/error.json)
    local message=$(field $W/error.json 'd["error"]["message"]')
    if [ "$code" = "$1" ] && [[ "$message" == *"$2"* ]]; then echo "ok: $code: $message"; else fail "wanted $1 '$2', got $code: $(head -c 300 $W/error.json)"; fi
    serving "$4"
}
expect_error 400 "not valid JSON" /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}'
expect_error 400 "messages[0].content has the wrong type" /v1/chat/completions '{"messages": [{"role": "user", "content": 5}]}'
expect_error 400 "max_tokens has the wrong type: expected an integer" /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}'
expect_error 400 "max_tokens must be in 1...256" /v1/completions '{"prompt": "hi", "max_tokens": 100000}'
expect_error 400 "this model's context is" /v1/completions "{\"prompt\": \"$(printf 'word %.0s' $(seq 2000))\"}"
expect_error 400 "the last message must be the user's" /v1/chat/completions '{"messages": [{"role": "assistant", "content": "hi"}]}'
expect_error 400 "response_format is not supported" /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}'
expect_error 400 "tools is not supported" /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}'
expect_error 400 "echo is a field of /v1/completions" /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "echo": true}'
expect_error 400 "not a token id" /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}], "logit_bias": {"999999": 100}}'
head -c 100000 /dev/zero | tr '\0' 'a' | sed 's/^/{"prompt": "/; s/$/"}/' > $W/big.json
code=$(curl -s -o $W/error.json -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @$W/big.json $url/v1/completions)
[ "$code" = 413 ] && echo "ok: 413: $(field $W/error.json 'd["error"]["message"]')" || fail "an oversize body: $code"
serving "an oversize body"

# A client that leaves mid-stream: it reads five events and closes its connection. Its
# generation (told to ignore end tokens, so only the disconnect can cut it short) stops far
# below the 250 tokens it asked for, and its slot is free again.
before=$(curl -s $url/health)
events=$(python3 -c "
import socket, sys
body = b'{\"prompt\":\"ROMEO:\",\"max_tokens\":250,\"ignore_eos\":true,\"stream\":true}'
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n' % len(body) + body)
seen = b''
while seen.count(b'data: ') < 5:
    chunk = s.recv(4096)
    if not chunk: break
    seen += chunk
s.close()
print(seen.count(b'data: '))" $port)
sleep 1
after=$(curl -s $url/health)
left=$(python3 -c "
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
made = b['generated_tokens'] - a['generated_tokens']
print(f'{made} of 250 tokens made, {b[\"running\"]} running' if 0 < made < 125 and b['running'] == 0 else f'FAIL {made} tokens, {b[\"running\"]} running')" "$before" "$after")
[ "$events" = 5 ] && [[ "$left" != FAIL* ]] && echo "ok: a client left after $events events: $left" || fail "disconnect: $left"
serving "a disconnect"

# Requests a browser on another site could send: a foreign Origin (a form's text/plain POST)
# and a Host that is not this loopback server's (DNS rebinding) are refused before any work.
code=$(curl -s -o $W/error.json -w '%{http_code}' -H 'Content-Type: text/plain' -H 'Origin: https://evil.example' \
    --data '{"prompt":"ROMEO:","max_tokens":5}' $url/v1/completions)
[ "$code" = 403 ] && echo "ok: 403 for another site's page: $(field $W/error.json 'd["error"]["message"]')" || fail "a foreign origin: $code"
code=$(curl -s -o $W/error.json -w '%{http_code}' -H 'Host: rebound.evil.example:8000' -H 'Content-Type: application/json' \
    --data '{"prompt":"ROMEO:","max_tokens":5}' $url/v1/completions)
[ "$code" = 403 ] && echo "ok: 403 for a foreign Host: $(field $W/error.json 'd["error"]["message"]')" || fail "a foreign Host: $code"

# Clients that try to stall the server: 1,000 idle and half-sent connections, 20 that leave
# before their whole replies, then a normal request answered within 2 s.
python3 scripts/serve_hostile.py $port load || fail "hostile clients"
serving "hostile clients"

kill -0 $server 2> /dev/null || fail "the server exited"

# A second server with one slot, no queue and a 2 s client timeout: slow clients are cut
# off, and a burst cannot pass the queue's limit. Then one with an API key: /v1/ needs it.
port2=$((port + 1))
url2=http://127.0.0.1:$port2
start2() {
    $nc serve --checkpoint "$model" --port $port2 --slots 1 --max-waiting 0 --client-timeout 2 "$@" >> "$W/server2.log" 2>&1 &
    server2=$!
    for _ in $(seq 100); do curl -sf $url2/health > /dev/null && break; sleep 0.1; done
}
start2
trap 'kill $server $server2 2> /dev/null; wait $server $server2 2> /dev/null; rm -rf "$W"' EXIT
python3 scripts/serve_hostile.py $port2 slow 2 || fail "slow clients"
python3 scripts/serve_hostile.py $port2 burst 60 || fail "a burst"
kill $server2; wait $server2 2> /dev/null
NANOCHAT_API_KEY=sesame start2 --max-messages 2
code=$(curl -s -o $W/error.json -w '%{http_code}' -H 'Content-Type: application/json' --data '{"prompt":"ROMEO:","max_tokens":5}' $url2/v1/completions)
[ "$code" = 401 ] && echo "ok: 401 without the API key: $(field $W/error.json 'd["error"]["message"]')" || fail "no API key: $code"
code=$(curl -s -o $W/ok.json -w '%{http_code}' -H 'Authorization: Bearer sesame' -H 'Content-Type: application/json' \
    --data '{"prompt":"ROMEO:","max_tokens":5}' $url2/v1/completions)
[ "$code" = 200 ] && echo "ok: 200 with the API key" || fail "with the API key: $code"
code=$(curl -s -o $W/error.json -w '%{http_code}' -H 'Authorization: Bearer sesame' -H 'Content-Type: application/json' \
    --data '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}' $url2/v1/chat/completions)
[ "$code" = 400 ] && grep -q "1 to 2 messages, got 3" $W/error.json && echo "ok: 400 for 3 messages under --max-messages 2" || fail "--max-messages 2: $code $(cat $W/error.json)"
[ $fails -eq 0 ] || { echo "serve_smoke: $fails failures" >&2; tail -n 20 "$W/server.log" "$W/server2.log" >&2; exit 1; }
echo "serve_smoke: all checks passed"
