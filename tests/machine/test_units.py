"""Fast tests of vmforge.machine: accel probe, seed content, network arguments, QEMU command line, SSH guards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from vmforge.machine import MachineError, accel, network, seed
from vmforge.machine.qemu import BuildVM, VMSpec
from vmforge.machine.ssh import SSHSession, generate_keypair
from tests.machine import fakeqemu
from tests.conftest import require_tools as require_tool


def test_probe_boot_sector_shape() -> None:
    mbr = accel.boot_sector()
    assert len(mbr) == 512 and mbr[-2:] == b"\x55\xaa"
    assert accel.probe_command("kvm", Path("p.img"), Path("s.log"))[2:5] == ["kvm", "-cpu", "host"]


def test_accel_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMFORGE_ACCEL", "kvm")
    assert accel.detect() == "kvm"
    monkeypatch.setenv("VMFORGE_ACCEL", "TCG")
    assert accel.detect() == "tcg"


def test_probe_runs_the_boot_sector_under_tcg() -> None:
    """The probe mechanism itself: the boot sector writes to the serial port and leaves by isa-debug-exit."""
    require_tool("qemu-system-x86_64")
    assert accel.probe("tcg", timeout=30)


def test_kvm_probe_failure_means_tcg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QEMU aborting under KVM ("failed to set MSR", as on this kind of machine): TCG, decided for certain."""
    require_tool("qemu-system-x86_64")
    wrapper, log, device = fakeqemu.make(tmp_path, "aborts")
    monkeypatch.setenv("VMFORGE_QEMU", str(wrapper))
    monkeypatch.setenv("VMFORGE_KVM_DEVICE", str(device))
    monkeypatch.delenv("VMFORGE_ACCEL", raising=False)
    d = accel.Accelerator(tmp_path / "accel.json").decide()
    assert (d.accel, d.confirmed, d.on_trial) == ("tcg", True, False)
    assert d.reason == "the KVM probe boot failed"
    assert fakeqemu.calls(log) == ["kvm probe"]


def test_missing_kvm_device_means_tcg_without_probing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper, log, _ = fakeqemu.make(tmp_path, "hangs")
    monkeypatch.setenv("VMFORGE_QEMU", str(wrapper))
    monkeypatch.setenv("VMFORGE_KVM_DEVICE", str(tmp_path / "no-such-device"))
    monkeypatch.delenv("VMFORGE_ACCEL", raising=False)
    d = accel.Accelerator(None).decide()
    assert d.accel == "tcg" and "no-such-device is not usable" in d.reason
    assert fakeqemu.calls(log) == []


def test_passed_probe_is_only_a_trial_and_a_rejection_is_remembered_per_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A boot sector running under KVM proves nothing about a kernel: KVM goes on trial; once rejected, the
    host (QEMU version, kernel, CPU) keeps TCG without probing again; another host key asks again."""
    require_tool("qemu-system-x86_64")
    wrapper, log, device = fakeqemu.make(tmp_path, "hangs")
    monkeypatch.setenv("VMFORGE_QEMU", str(wrapper))
    monkeypatch.setenv("VMFORGE_KVM_DEVICE", str(device))
    monkeypatch.delenv("VMFORGE_ACCEL", raising=False)
    store = tmp_path / "accel.json"
    first = accel.Accelerator(store)
    d = first.decide()
    assert (d.accel, d.on_trial, d.source) == ("kvm", True, "probe")
    assert not store.exists()  # a probe alone is not remembered
    first.reject_kvm("a build VM booted under KVM made no progress")
    again = accel.Accelerator(store).decide()
    assert (again.accel, again.source) == ("tcg", "remembered")
    assert "made no progress" in again.reason
    assert fakeqemu.calls(log) == ["kvm probe"]  # the second decision did not probe
    entry = next(iter(json.loads(store.read_text()).values()))
    assert set(entry["host"]) == {"qemu", "kernel", "cpu"} and entry["accel"] == "tcg"
    monkeypatch.setattr(accel, "host_key", lambda: {"qemu": "QEMU 99", "kernel": "x", "cpu": "y"})
    assert accel.Accelerator(store).decide().on_trial  # an upgraded QEMU asks again
    confirmed = accel.Accelerator(store)
    confirmed.decide()
    confirmed.confirm("kvm", "reached SSH")
    assert accel.Accelerator(store).decide() == accel.Decision("kvm", True, "reached SSH", "remembered")


def test_seed_documents() -> None:
    cfg = seed.SeedConfig(["ssh-ed25519 AAAA k1"], hostname="b1", user="packer")
    text = seed.user_data(cfg)
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["ssh_authorized_keys"] == ["ssh-ed25519 AAAA k1"]
    assert doc["disable_root"] is False and doc["locale"] is False
    assert doc["package_update"] is False and doc["package_upgrade"] is False
    assert doc["hostname"] == "b1"
    assert doc["users"][0]["name"] == "packer" and doc["users"][0]["ssh_authorized_keys"] == ["ssh-ed25519 AAAA k1"]
    meta = yaml.safe_load(seed.meta_data(cfg))
    assert meta["instance-id"] == cfg.instance_id
    assert seed.SeedConfig([]).instance_id != seed.SeedConfig([]).instance_id


@pytest.mark.needs_tools(("genisoimage", "xorriso"))
def test_seed_iso_label(tmp_path: Path) -> None:
    iso = seed.make_seed(seed.SeedConfig(["ssh-ed25519 AAAA k1"]), tmp_path / "seed.iso")
    data = iso.read_bytes()
    assert data[32769:32774] == b"CD001"
    assert data[32808:32840].decode().strip() == "cidata"
    assert b"ssh-ed25519 AAAA k1" in data and b"instance-id" in data


def test_network_arguments() -> None:
    assert network.netdev_args("isolated", 2222)[1] == "user,id=net0,hostfwd=tcp::2222-:22"
    assert "restrict=on" in network.netdev_args("restricted", 2222)[1]
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in network.netdev_args("open", 2222)[1]
    assert network.wrapper_args("open") == [] and network.wrapper_args("restricted") == []
    with pytest.raises(MachineError):
        network.netdev_args("bridge", 1)  # type: ignore[arg-type]
    port = network.free_port()
    assert 1024 < port < 65536


@pytest.mark.needs_tools("pasta", "unshare", "ip")
def test_isolation_wrapper_closes_host_paths(tmp_path: Path) -> None:
    wrapper = network.wrapper_args("isolated", tmp_path / "netns.json")
    assert Path(wrapper[0]).name == "unshare" and wrapper[1] == "--net" and wrapper[-1] == "--"
    assert wrapper[wrapper.index("-m") + 1] == "vmforge.machine.netns" and str(tmp_path / "netns.json") in wrapper
    args = network.pasta_args(2222, "vmforge-123")
    assert Path(args[0]).name == "pasta" and args[-2:] == ["--netns", "vmforge-123"]
    assert "--no-map-gw" in args and "--config-net" in args and "--no-netns-quit" in args
    for flag in ("-T", "-U", "-u"):
        assert args[args.index(flag) + 1] == "none"
    assert args[args.index("-t") + 1] == "127.0.0.1/2222"


def test_qemu_command_os_disk_first(tmp_path: Path) -> None:
    spec = VMSpec(disk=tmp_path / "os.qcow2", workdir=tmp_path, seed=tmp_path / "seed.iso", cpus=3,
                  memory_mib=1536, accel="tcg", network="restricted")
    vm = BuildVM(spec)
    cmd = vm.command()
    joined = " ".join(cmd)
    # Tied to its parent: QEMU dies with the process that started it, even when that is SIGKILLed.
    assert Path(cmd[0]).name == "setpriv" and cmd[1:3] == ["--pdeathsig", "KILL"]
    assert cmd[3].endswith("qemu-system-x86_64")
    assert "-machine pc" in joined  # Gen1: BIOS
    assert "-accel tcg -cpu max -smp 3 -m 1536" in joined
    os_at = joined.index("id=os,")
    seed_at = joined.index("id=seed,")
    assert os_at < seed_at
    assert "virtio-blk-pci,drive=os,bootindex=0" in joined
    assert f"hostfwd=tcp:127.0.0.1:{vm.ssh_port}-:22" in joined
    assert f"unix:{tmp_path / 'qmp.sock'},server=on,wait=off" in joined
    assert f"file:{tmp_path / 'serial.log'}" in joined


@pytest.mark.needs_tools("qemu-system-x86_64", "qemu-img")
def test_no_process_left_after_an_error(vm_workdir: Path) -> None:
    from vmforge.disk import qemuimg

    disk = vm_workdir / "blank.qcow2"
    qemuimg.run_qemu_img(["create", "-q", "-f", "qcow2", str(disk), "64M"], timeout=30)
    with pytest.raises(RuntimeError, match="boom"):
        with BuildVM(VMSpec(disk=disk, workdir=vm_workdir, accel="tcg", network="restricted",
                            memory_mib=256)) as vm:
            assert vm.running()
            raise RuntimeError("boom")
    assert not vm.running()
    # vm_workdir's teardown fails the test if any process naming the directory is still alive.


def test_qemu_start_failure_is_reported(vm_workdir: Path) -> None:
    vm = BuildVM(VMSpec(disk=vm_workdir / "missing.qcow2", workdir=vm_workdir, accel="tcg",
                        network="restricted"))
    with pytest.raises(MachineError, match="QEMU exited at start"):
        vm.start(timeout=20)
    assert not vm.running()


def test_ssh_refuses_non_loopback() -> None:
    kp = generate_keypair()
    assert kp.public.startswith("ssh-ed25519 ")
    with pytest.raises(MachineError, match="loopback only"):
        SSHSession(22, kp.private, host="192.0.2.10")


def test_gen2_gets_uefi_with_a_private_variable_store(tmp_path: Path) -> None:
    from vmforge.machine import firmware

    assert firmware.for_generation("V2") == "uefi"
    assert firmware.for_generation("V1") == firmware.for_generation(None) == "bios"
    vm = BuildVM(VMSpec(disk=tmp_path / "os.qcow2", workdir=tmp_path, accel="tcg", network="restricted",
                        firmware="uefi"))
    joined = " ".join(vm.command())
    code, template = firmware.ovmf()
    assert "-machine q35" in joined
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={code}" in joined
    assert f"if=pflash,format=raw,unit=1,file={tmp_path / 'efivars.fd'}" in joined
    assert not (tmp_path / "efivars.fd").exists()  # building the command line writes nothing
    firmware.prepare("uefi", tmp_path)
    assert (tmp_path / "efivars.fd").read_bytes() == template.read_bytes()
