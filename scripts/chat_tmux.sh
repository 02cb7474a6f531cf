#!/usr/bin/env bash
# Drives `nanochat chat` in a terminal through tmux, as a person would: two turns typed with
# send-keys, the screen read back with capture-pane. Checks both replies came back and that
# the second turn prefilled only its own tokens (the decode cache kept between turns), and
# prints the screen and the counts.
#
#   scripts/chat_tmux.sh [CHECKPOINT]      default runs/chat (from `nanochat sft`)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
ckpt=${1:-runs/chat}
need_nanochat
command -v tmux > /dev/null || scripts/install-deps.sh tmux
session=nanochat-chat-$$
trap 'tmux kill-session -t "$session" 2>/dev/null' EXIT
tmux new-session -d -s "$session" -x 160 -y 50 "$nc chat --checkpoint $ckpt --stats --temperature 0 --max-tokens 60; sleep 30"

# wait_for N: until the screen shows N "[prefilled" lines (a reply has ended), 120 s at most.
wait_for() {
    for _ in $(seq 1200); do
        [ "$(tmux capture-pane -p -t "$session" | grep -c '^\[prefilled')" -ge "$1" ] && return 0
        sleep 0.1
    done
    echo "FAIL: no reply $1 within 120 s"; tmux capture-pane -p -t "$session"; exit 1
}
for _ in $(seq 300); do tmux capture-pane -p -t "$session" | grep -q '^User: ' && break; sleep 0.1; done
tmux send-keys -t "$session" "What is 12 times 34?" Enter
wait_for 1
tmux send-keys -t "$session" "Who are you?" Enter
wait_for 2
screen=$(tmux capture-pane -p -t "$session")
echo "$screen" | sed '/^$/N;/^\n$/D'
first=$(echo "$screen" | grep '^\[prefilled' | sed -n 1p | sed -E 's/^\[prefilled ([0-9]+).*/\1/')
second=$(echo "$screen" | grep '^\[prefilled' | sed -n 2p | sed -E 's/^\[prefilled ([0-9]+).*/\1/')
context=$(echo "$screen" | grep '^\[prefilled' | sed -n 1p | sed -E 's/.*conversation ([0-9]+) tokens.*/\1/')
echo
echo "turn 1 prefilled $first tokens; turn 2 prefilled $second tokens (the conversation held $context before it)"
# Turn 2's own tokens: the previous reply's end, <|user_start|>, the message, <|user_end|>,
# <|assistant_start|>: far fewer than the conversation so far.
if [ -n "$second" ] && [ "$second" -lt "$context" ] && [ "$second" -le 20 ]; then
    echo "chat_tmux: ok (the second turn prefilled only its own tokens)"
else
    echo "FAIL: the second turn prefilled $second tokens"; exit 1
fi
