"""`completion bash|zsh`: a completion script for commands, kinds, flags and names.

Object names come from `miniorch get KIND -o name` run in the background under a short
`timeout`, with the `-n`/`--state-dir`/`--kubeconfig` the user already typed, so
completion never hangs on a stopped cluster. zsh reuses the bash function through
`bashcompinit`, as kubectl's own zsh script once did.
"""

# ruff: noqa: E501 (the bash script's case patterns cannot be wrapped)
from __future__ import annotations

import argparse

from miniorch.api.kinds import RESOURCES
from miniorch.cli.context import Context

COMMANDS = ("up", "down", "dashboard", "cluster-info", "get", "describe", "run", "create",
            "apply", "expose", "scale", "delete", "label", "annotate", "logs", "exec",
            "completion", "version", "api-resources", "image", "container")

FLAGS: dict[str, str] = {
    "": "--state-dir --kubeconfig -n --namespace -h --help",
    "up": "--nodes --hollow-nodes --hollow-profile --no-demo --detach --api-port --dashboard-port --sandbox-mode --lb-cidr "
          "--service-cidr --node-port-range",
    "dashboard": "--no-browser",
    "get": "-o --output -w --watch --watch-only -l --selector --field-selector --show-labels "
           "--no-headers --ignore-not-found -A --all-namespaces",
    "describe": "-l --selector -A --all-namespaces",
    "run": "--image --port --replicas -l --labels --env --command --dry-run -o --output",
    "create": "-f --filename -R --recursive -o --output",
    "apply": "-f --filename -R --recursive -o --output",
    "expose": "--type --name --port --target-port --protocol --selector -l --labels",
    "scale": "--replicas --current-replicas",
    "delete": "-f --filename -l --selector --field-selector --all --grace-period --now --force "
              "--wait --timeout --cascade --ignore-not-found -A --all-namespaces",
    "label": "--overwrite --all",
    "annotate": "--overwrite --all",
    "logs": "-c --container -f --follow --tail --timestamps -p --previous --since",
    "exec": "-c --container -i --stdin -t --tty -q --quiet",
    "version": "--client -o --output",
    "api-resources": "--namespaced -o --output",
}


def kind_words() -> list[str]:
    words: list[str] = ["all"]
    for r in RESOURCES:
        words += [r.plural, r.singular, *r.short_names]
    return sorted(set(words))


_BASH = r'''# miniorch bash completion.   source <(miniorch completion bash)
__miniorch_global_args() {
    # Re-pass the flags that choose the cluster and namespace to the helper `get`.
    local i w out=()
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        w="${COMP_WORDS[i]}"
        case "$w" in
            -n|--namespace|--state-dir|--kubeconfig) out+=("$w" "${COMP_WORDS[i+1]}") ;;
            --namespace=*|--state-dir=*|--kubeconfig=*) out+=("$w") ;;
            -A|--all-namespaces) out+=("$w") ;;
        esac
    done
    echo "${out[@]}"
}

__miniorch_names() {
    # Names of objects of kind $1, fetched in the background with a short timeout.
    local kind="$1" lines
    lines=$(timeout 2 "${COMP_WORDS[0]}" $(__miniorch_global_args) get "$kind" -o name 2>/dev/null) || return 0
    local l
    for l in $lines; do echo "${l#*/}"; done
}

_miniorch() {
    local cur prev
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    local commands="@COMMANDS@"
    local kinds="@KINDS@"
    local verb="" sub="" kind="" nargs=0 i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        case "$w" in
            -n|--namespace|--state-dir|--kubeconfig|-o|--output|-l|--selector|-c|--container|--image|--port|--replicas|--type|--name|-f|--filename|--tail|--field-selector|--nodes|--api-port|--dashboard-port|--target-port|--protocol|--grace-period|--cascade|--since|-t|--tag|--env|--labels|--timeout)
                case "$w" in -t|--tag) [[ "$verb" == image ]] && ((i++)) ;; *) ((i++)) ;; esac ;;
            -*) ;;
            *)
                if [[ -z "$verb" ]]; then verb="$w"
                elif [[ "$verb" == image && -z "$sub" ]]; then sub="$w"
                else
                    [[ -z "$kind" ]] && kind="$w"
                    ((nargs++))
                fi ;;
        esac
    done

    case "$prev" in
        -n|--namespace) COMPREPLY=($(compgen -W "$(__miniorch_names namespaces)" -- "$cur")); return 0 ;;
        -o|--output) COMPREPLY=($(compgen -W "wide json yaml name jsonpath=" -- "$cur")); return 0 ;;
        --type) COMPREPLY=($(compgen -W "ClusterIP NodePort LoadBalancer" -- "$cur")); return 0 ;;
        -f|--filename|--state-dir|--kubeconfig) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
        -c|--container) return 0 ;;
    esac

    if [[ -z "$verb" ]]; then
        if [[ "$cur" == -* ]]; then
            COMPREPLY=($(compgen -W "@FLAGS_@" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        local flags="@FLAGS_@"
        case "$verb" in
@FLAG_CASES@
        esac
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return 0
    fi
    case "$verb" in
        get|describe|delete|label|annotate)
            if [[ -z "$kind" ]]; then
                COMPREPLY=($(compgen -W "$kinds" -- "$cur"))
            elif [[ "$kind" != */* ]]; then
                COMPREPLY=($(compgen -W "$(__miniorch_names "${kind%%,*}")" -- "$cur"))
            fi ;;
        expose|scale)
            if [[ -z "$kind" ]]; then
                COMPREPLY=($(compgen -W "rc replicationcontroller pod svc service" -- "$cur"))
            elif ((nargs == 1)); then
                COMPREPLY=($(compgen -W "$(__miniorch_names "$kind")" -- "$cur"))
            fi ;;
        logs|exec)
            ((nargs == 0)) && COMPREPLY=($(compgen -W "$(__miniorch_names pods)" -- "$cur")) ;;
        completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
        create|apply) COMPREPLY=($(compgen -f -- "$cur")) ;;
        image)
            if [[ -z "$sub" ]]; then
                COMPREPLY=($(compgen -W "build ls tag rm push pull login" -- "$cur"))
            elif [[ "$sub" == build ]]; then
                COMPREPLY=($(compgen -d -- "$cur"))
            fi ;;
        container)
            COMPREPLY=($(compgen -W "run ls inspect exec logs stop rm" -- "$cur")) ;;
    esac
    return 0
}
'''

_BASH_TAIL = "complete -o default -F _miniorch miniorch\n"
_ZSH_HEAD = ("#compdef miniorch\n# miniorch zsh completion.   source <(miniorch completion zsh)\n"
             "autoload -U +X bashcompinit && bashcompinit\n")


def completion_script(shell: str) -> str:
    cases = "\n".join(f'            {verb}) flags="$flags {flags}" ;;'
                      for verb, flags in FLAGS.items() if verb)
    script = (_BASH.replace("@COMMANDS@", " ".join(COMMANDS))
              .replace("@KINDS@", " ".join(kind_words()))
              .replace("@FLAGS_@", FLAGS[""])
              .replace("@FLAG_CASES@", cases))
    if shell == "zsh":
        return _ZSH_HEAD + script + _BASH_TAIL
    return script + _BASH_TAIL


def cmd_completion(ctx: Context, args: argparse.Namespace) -> int:
    ctx.out(completion_script(args.shell))
    return 0
