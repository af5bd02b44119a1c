"""`sam local invoke` on the real template: the api function, built for this host,
in the Lambda base image that scripts/lambda-base-image.sh builds. The template is used
as written but for two lines: the architecture (this host's) and the code folder (the
test build's `api` binary as `bootstrap`). The function runs its documented local
fallback (SQLite, no table). Each event's answer is checked.

    python3 scripts/sam_local.py <folder holding the api binary>
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [
    # (event, status, a string the body holds)
    ("events/api/get-healthz.json", 200, ""),
    ("events/api/get-openapi.json", 200, '"openapi"'),
    ("events/api/post-notification-no-key.json", 401, "problem"),
]


def main() -> None:
    binaries = sys.argv[1]
    work = tempfile.mkdtemp(prefix="herald-sam-local-")
    code = os.path.join(work, "api")
    os.makedirs(code)
    shutil.copy(os.path.join(binaries, "api"), os.path.join(code, "bootstrap"))
    with open(os.path.join(ROOT, "template.yaml")) as f:
        template = f.read()
    for old, new in [("Architectures: [arm64]", "Architectures: [x86_64]"),
                     ("    CodeUri: .\n", f"    CodeUri: {code}\n")]:
        assert template.count(old) == 1, f"template.yaml no longer has one '{old.strip()}'"
        template = template.replace(old, new)
    local = os.path.join(work, "template.yaml")
    with open(local, "w") as f:
        f.write(template)
    env = os.path.join(work, "env.json")
    with open(env, "w") as f:
        json.dump({"ApiFunction": {"HERALD_TABLE": "", "HERALD_DATA_DIR": "/tmp/herald"}}, f)
    failures = []
    for event, status, holds in CASES:
        run = subprocess.run(
            ["sam", "local", "invoke", "ApiFunction", "--template", local,
             "--event", os.path.join(ROOT, event), "--env-vars", env,
             "--skip-pull-image"],
            capture_output=True, text=True, timeout=300, cwd=work,
            env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1",
                 "SAM_CLI_TELEMETRY": "0"})
        answer = None
        for line in reversed(run.stdout.strip().splitlines()):
            try:
                answer = json.loads(line)
                break
            except ValueError:
                continue
        got = answer.get("statusCode") if isinstance(answer, dict) else None
        body = answer.get("body", "") if isinstance(answer, dict) else ""
        if got != status or holds not in body:
            failures.append(f"{event}: wanted {status} holding {holds!r}, got {got}: "
                            f"{run.stdout[-500:]}{run.stderr[-1500:]}")
        else:
            print(f"sam local invoke ApiFunction -e {event}: {got}")
    shutil.rmtree(work, ignore_errors=True)
    if failures:
        sys.exit("\n".join(failures))


if __name__ == "__main__":
    main()
