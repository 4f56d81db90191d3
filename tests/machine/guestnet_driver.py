"""Run inside a test-made network namespace by test_guestnet_slow: boot one build VM there (with a metadata app
for one identity), probe from inside the guest and print the results as JSON on the last line.

``python -m tests.machine.guestnet_driver IMAGE WORKDIR CONFIG.json``; CONFIG has ``probes`` (name → shell
command run in the guest, its exit status recorded), ``deny``/``allow`` (the build VM's policy), ``key_dir``
(a data dir whose signing key mints the tokens) and ``identity`` (the one identity the VM may use).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
from pathlib import Path

from vmforge.disk import qemuimg
from vmforge.identity.imds import VMInfo, create_app
from vmforge.identity.keys import ensure_key
from vmforge.identity.managed import Identity
from vmforge.identity.tokens import LocalIssuer
from vmforge.machine.qemu import BuildVM, VMSpec
from vmforge.machine.seed import SeedConfig, make_seed
from vmforge.machine.ssh import SSHSession, generate_keypair
from vmforge.netpolicy import GuestPolicy, host_addresses


def main(image: Path, work: Path, config: dict) -> dict:
    overlay = work / "os.qcow2"
    qemuimg.create_overlay(image, overlay, "qcow2")
    keys = generate_keypair()
    seed = make_seed(SeedConfig([keys.public]), work / "seed.iso")
    issuer = LocalIssuer(ensure_key(Path(config["key_dir"])), config["issuer"], "t")
    ident = Identity(**config["identity"])
    app = create_app([ident], issuer, VMInfo("vm", "westus", ident.subscription_id, "IT_rg", "Standard_B2s"))
    policy = GuestPolicy(deny=[ipaddress.ip_network(c) for c in config["deny"]],
                         allow=[ipaddress.ip_network(c) for c in config["allow"]], host=host_addresses())
    results: dict = {"host_addresses": [str(a) for a in policy.host], "probes": {}, "outputs": {}}
    with BuildVM(VMSpec(disk=overlay, workdir=work, seed=seed, guest_policy=policy, metadata_app=app)) as vm:
        async def session() -> None:
            async with SSHSession(vm.ssh_port, keys.private) as ssh:
                await ssh.wait_ready(400)
                for name, command in config["probes"].items():
                    lines: list[str] = []
                    status = await ssh.run(command, on_line=lambda s, ln: lines.append(ln), timeout=60)
                    results["probes"][name] = status
                    results["outputs"][name] = "\n".join(lines)

        asyncio.run(session())
        vm.stop(timeout=0)
    return results


if __name__ == "__main__":
    out = main(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text()))
    print(json.dumps(out))
