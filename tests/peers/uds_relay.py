"""Relay one connection between stdin/stdout and a Unix socket (QEMU's guestfwd `cmd:`).

QEMU starts this for each TCP connection the guest makes to the forwarded address, so a VM
with `restrict=on` user networking reaches a server on a Unix socket and nothing else.
"""

import os
import socket
import sys
import threading


def main() -> None:
    server = socket.socket(socket.AF_UNIX)
    server.connect(sys.argv[1])

    def to_guest() -> None:
        while data := server.recv(65536):
            os.write(1, data)
        os._exit(0)

    threading.Thread(target=to_guest, daemon=True).start()
    while data := os.read(0, 65536):
        server.sendall(data)
    server.shutdown(socket.SHUT_WR)
    threading.Event().wait(30)


if __name__ == "__main__":
    main()
