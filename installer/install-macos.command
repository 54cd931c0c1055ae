#!/bin/bash
# Double-click in Finder to install the training agent (macOS opens it in Terminal).
# It runs install.sh from this folder, which asks for the platform's URL and your API
# key (hidden) unless BACKEND_URL and API_KEY are set, then leaves the window open.
cd "$(dirname "$0")" || exit 1
status=0
./install.sh "$@" || status=$?
echo
if [ "$status" -eq 0 ]; then
    echo "The training agent is installed. You can close this window."
else
    echo "The installation did not finish (see the message above). You can close this window."
fi
read -r -p "Press Return to close." _ || true
exit "$status"
