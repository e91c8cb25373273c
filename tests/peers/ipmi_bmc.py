"""IPMI BMCs simulated by pyghmi's `Bmc`, many in one process, on 127.0.0.1.

Run as a script: `python ipmi_bmc.py STATE_DIR PORT [PORT ...]`. Each BMC accepts user
`admin` with the password in the environment variable BMC_PASSWORD, keeps power state and
boot flags, and writes them to STATE_DIR/<port>.json so tests can read what a BMC was told.
Two quirks of the simulator are fixed here: its open-session answer offers SHA-1 whatever
the client asked (pyghmi's own client then fails, so non-SHA-1 requests are refused and the
client falls back), and its boot flags ignore the bit layout of the IPMI spec.
"""

import json
import os
import sys
from pathlib import Path

import pyghmi.ipmi.bmc as bmc
import pyghmi.ipmi.private.serversession as serversession

RAKP_HMAC_SHA1 = 1
UNSUPPORTED_AUTH_ALGORITHM = 0x11

_open_session_response = serversession.ServerSession.create_open_session_response


def _sha1_only(self, request):
    auth_algorithm = request[12] & 0b111111
    if auth_algorithm != RAKP_HMAC_SHA1:
        return bytearray([request[0], UNSUPPORTED_AUTH_ALGORITHM, 0, 0]) + request[4:8]
    return _open_session_response(self, request)


serversession.ServerSession.create_open_session_response = _sha1_only


class SimulatedBmc(bmc.Bmc):
    def __init__(self, authdata, port: int, state_dir: Path) -> None:
        super().__init__(authdata, port=port, address="127.0.0.1")
        self.state_file = state_dir / f"{port}.json"
        self.state = {"power": "off", "boot_flags": [0, 0, 0, 0, 0]}
        self._save()

    def _save(self) -> None:
        partial = self.state_file.with_suffix(".partial")
        partial.write_text(json.dumps(self.state))
        partial.replace(self.state_file)

    def get_power_state(self):
        return self.state["power"]

    def power_on(self):
        self.state["power"] = "on"
        self._save()

    def power_off(self):
        self.state["power"] = "off"
        self._save()

    power_shutdown = power_off

    def power_reset(self):
        self.state["power"] = "on"
        self._save()

    power_cycle = power_reset

    def get_system_boot_options(self, request, session):
        if request["data"][0] != 5:  # only the boot flags parameter
            return session.send_ipmi_response(code=0x80)
        session.send_ipmi_response(data=[1, 5, *self.state["boot_flags"]])

    def set_system_boot_options(self, request, session):
        data = list(request["data"])
        if data[0] == 5:
            self.state["boot_flags"] = (data[1:] + [0] * 5)[:5]
            self._save()
        session.send_ipmi_response()


def main() -> None:
    state_dir = Path(sys.argv[1])
    authdata = {"admin": os.environ["BMC_PASSWORD"]}
    bmcs = [SimulatedBmc(authdata, int(port), state_dir) for port in sys.argv[2:]]
    print("ready", len(bmcs), flush=True)
    bmc.Bmc.listen(timeout=30)


if __name__ == "__main__":
    main()
