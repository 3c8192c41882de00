#!/bin/sh
# Turn mounted secrets into the ${VARIABLES} faxflow.toml refers to, then exec faxflow.
# For every NAME_FILE=/run/secrets/x in the environment, NAME gets the file's content (without
# the trailing newline) and NAME_FILE is dropped. Values are never printed.
set -eu

for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)_FILE=.*/\1/p'); do
    file=$(printenv "${name}_FILE") || continue
    if printenv "$name" >/dev/null 2>&1; then
        echo "faxflow-entrypoint: both $name and ${name}_FILE are set; set only one" >&2
        exit 2
    fi
    if [ ! -r "$file" ]; then
        echo "faxflow-entrypoint: ${name}_FILE: cannot read $file" >&2
        exit 2
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
done

# exec: faxflow replaces this shell, so tini's SIGTERM goes straight to it.
exec faxflow "$@"
