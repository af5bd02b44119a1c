"""Cold start of each function's release `bootstrap`, against a minimal fake of the
Lambda Runtime API on loopback: time from exec to the first `GET .../invocation/next`
(init, what Lambda bills as Init Duration) and to the first response posted.

    python3 bench/cold_start.py RUNS NAME=BINARY:EVENT_FILE ...
"""
import http.server, json, os, socket, statistics, subprocess, sys, threading, time

class Runtime(http.server.ThreadingHTTPServer):
    daemon_threads = True

def serve(event: bytes):
    marks = {}
    done = threading.Event()
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass
        def do_GET(self):
            if self.path.endswith("/runtime/invocation/next"):
                if "next" in marks:  # one invocation per process: park the second poll
                    done.wait(5)
                    return
                marks["next"] = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(event)))
                self.end_headers()
                self.wfile.write(event)
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            marks.setdefault("response", time.perf_counter())
            marks["body"] = body
            marks["error"] = "/error" in self.path
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            done.set()
    server = Runtime(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, marks, done

def once(binary: str, event: bytes):
    server, marks, done = serve(event)
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench", "RUST_LOG": "warn",
    })
    start = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finished = done.wait(10)
    process.kill()
    _, stderr = process.communicate()
    server.shutdown()
    if not finished or marks.get("error"):
        raise SystemExit(f"{binary}: no response\n{stderr.decode()[-2000:]}\n{marks.get('body')}")
    return (marks["next"] - start) * 1000, (marks["response"] - start) * 1000

def main():
    runs = int(sys.argv[1])
    print(f"| function | binary size | init (median of {runs}) | first response (median) |")
    print("|---|---|---|---|")
    for spec in sys.argv[2:]:
        name, rest = spec.split("=", 1)
        binary, event_file = rest.split(":", 1)
        event = open(event_file, "rb").read()
        once(binary, event)  # warm the page cache: measure the process, not the disk
        samples = [once(binary, event) for _ in range(runs)]
        init = statistics.median(s[0] for s in samples)
        first = statistics.median(s[1] for s in samples)
        size = os.path.getsize(binary) / 1e6
        print(f"| {name} | {size:.1f} MB | {init:.1f} ms | {first:.1f} ms |")

main()
