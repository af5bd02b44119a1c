"""A real SMTP server on loopback for Herald's tests (aiosmtpd).

Writes each accepted message to DIR/<n>.eml. Recipients starting with "reject" get a
permanent 550, those starting with "busy" a transient 451, and a sender starting with
"suspended" gets 535 (RFC 4954: the credentials are refused), so tests can check how
Herald classifies SMTP replies.

usage: python3 smtp_sink.py PORT DIR
"""

import sys
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address.split("@")[0].startswith("suspended"):
            return "535 5.7.8 authentication credentials invalid"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("reject"):
            return "550 5.1.1 no such user"
        if local.startswith("busy"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            name = self.folder / f"{self.count:06d}.eml"
        header = f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        tmp = name.with_suffix(".tmp")
        tmp.write_bytes(header + envelope.content)
        tmp.rename(name)  # readers never see half a message
        return "250 2.0.0 queued as sink-%d" % self.count


def main():
    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(Sink(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()  # runs until the test closes our stdin or kills us
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
