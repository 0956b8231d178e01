"""Kernel-enforced confinement of one sandbox child, applied before untrusted code runs.

The layers (what each stops on its own is in docs/sandbox.md):
- namespaces (zygote): new network and mount namespaces, a private size-bounded
  tmpfs on /tmp (not root: inside a user namespace, where the kernel allows one);
  the interpreter's and the package's dirs that live under /tmp (a checkout or a
  virtualenv there) are bound into it read-only, so the child still sees them;
  children inherit all this, so creating it costs nothing per task;
- uid (as root): the child drops to a uid that owns nothing, no groups, no capabilities
  (not root: it keeps the parent's uid and drops any capabilities);
- rlimits: address space, CPU seconds, file size, open files, no core, no processes;
- Landlock (`landlock` package): read the interpreter's and the package's files,
  read, write, create and remove regular files in the zygote's scratch dir, nothing else;
- seccomp (libseccomp through `pyseccomp`): an allow-list of the system calls
  computing needs; the process is killed (SIGSYS) on exec, fork/clone, kill,
  ptrace, sockets, mknod, mount, namespace, chmod/chown, link and rlimit calls;
  any other call (or ioctl/fcntl command) fails with EPERM. Without Landlock it also refuses every open
  for writing.

`Confinement.prepare()` runs once in the zygote (namespaces, the Landlock
ruleset, libseccomp's filter compiled to BPF); `Confinement.apply()` runs in
each forked child and costs a few system calls.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import math
import os
import resource
import signal
import tempfile

UNPRIVILEGED_UID = 65534  # `nobody`: owns no files
_CLONE_NEWNS, _CLONE_NEWNET, _CLONE_NEWUSER = 0x00020000, 0x40000000, 0x10000000
_TMP_FILES = 16  # the private /tmp holds this many files of the largest size a task may write
_TMP_INODES = 4096
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 1 << 5, 1 << 12, 1 << 14, 1 << 18
_MS_STRICTATIME, _MNT_DETACH = 1 << 24, 2
# statvfs flag -> mount flag: what a remount must repeat (in a user namespace, a flag of the
# original mount may not be cleared)
_KEPT_MOUNT_FLAGS = {os.ST_NOSUID: 2, os.ST_NODEV: 4, os.ST_NOEXEC: 8, os.ST_NOATIME: 1 << 10,
                     os.ST_NODIRATIME: 1 << 11, os.ST_RELATIME: 1 << 21}
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 1, 38, 22, 2
_LIBC = ctypes.CDLL(None, use_errno=True)

_ALLOWED_SYSCALLS = (
    "read readv pread64 write writev pwrite64 close close_range lseek fstat newfstatat stat lstat statx "
    "statfs fstatfs access faccessat faccessat2 openat open getdents64 getcwd chdir fchdir readlink "
    "readlinkat dup dup2 dup3 mkdir mkdirat unlink unlinkat rmdir rename renameat renameat2 "
    "ftruncate truncate fsync fdatasync fadvise64 umask "
    "mmap munmap mremap mprotect brk madvise "
    "rt_sigaction rt_sigprocmask rt_sigreturn sigaltstack restart_syscall setitimer getitimer "
    "getpid getppid gettid getuid geteuid getgid getegid getresuid getresgid getgroups getpgrp "
    "uname sysinfo sched_getaffinity sched_yield getrusage times getrlimit "
    "clock_gettime clock_getres gettimeofday time nanosleep clock_nanosleep "
    "futex set_robust_list rseq getrandom exit exit_group"
).split()
# Calls no computation makes: the process is killed on the spot (SIGSYS), no matter who catches what.
_FATAL_SYSCALLS = (
    "execve execveat fork vfork clone clone3 kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo "
    "pidfd_open pidfd_send_signal pidfd_getfd ptrace process_vm_readv process_vm_writev "
    "process_madvise kcmp mknod mknodat socket socketpair connect bind listen accept accept4 "
    "sendto recvfrom sendmsg recvmsg setns unshare mount umount2 pivot_root chroot "
    "open_by_handle_at name_to_handle_at setuid setgid setreuid setregid setresuid setresgid "
    "setgroups setfsuid setfsgid capset setrlimit chmod fchmod fchmodat fchmodat2 chown fchown "
    "lchown fchownat link linkat symlink symlinkat bpf perf_event_open keyctl add_key request_key "
    "userfaultfd io_uring_setup io_uring_enter io_uring_register memfd_create init_module "
    "finit_module delete_module kexec_load kexec_file_load reboot personality seccomp"
).split()
_IOCTLS = (0x5401, 0x5451, 0x5450)  # TCGETS (isatty), FIOCLEX, FIONCLEX
# F_DUPFD F_GETFD F_SETFD F_GETFL F_SETFL F_DUPFD_CLOEXEC; not F_SETOWN/F_SETSIG (SIGIO to another process)
_FCNTLS = (0, 1, 2, 3, 4, 1030)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_bytes: int  # address space a child may add to the zygote's
    file_bytes: int  # largest file a program may write in its scratch dir
    cpu_seconds: float  # the kernel's backstop (SIGXCPU) behind the worker's own timer


@dataclasses.dataclass
class Confinement:
    """What the zygote prepared once; `report()` is the pool's one-line statement of the active layers."""

    limits: Limits
    read_dirs: tuple[str, ...]
    scratch: str  # the zygote's scratch dir: emptied after each task, the only writable place
    as_root: bool = dataclasses.field(default_factory=lambda: os.geteuid() == 0)
    namespaces: str = "off"
    landlock: str = "off"
    seccomp: str = "off"
    _ruleset: object = None
    _filter_program: object = None
    _address_space: int = 0
    _zygote_pid: int = 0

    def prepare(self) -> None:
        """Once, in the zygote: Landlock's read rules and the seccomp filter (with the caller's full
        access), then the namespaces, then the scratch dir inside them and its rule."""
        self._ruleset, self.landlock = _landlock_ruleset(self.read_dirs)
        self._filter_program, self.seccomp = _compile_seccomp_filter(self._ruleset is not None)
        self.namespaces = _enter_namespaces(self.as_root, _TMP_FILES * self.limits.file_bytes, self.read_dirs)
        os.makedirs(self.scratch, mode=0o700, exist_ok=True)
        if self.as_root:
            os.chown(self.scratch, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
        if self._ruleset is not None:
            _allow_scratch(self._ruleset, self.scratch)
        self._address_space = _address_space()
        self._zygote_pid = os.getpid()

    def report(self) -> str:
        uid = f"on (uid {UNPRIVILEGED_UID})" if self.as_root else "off (not root: same uid as the parent)"
        return (
            f"sandbox layers: process per task on; namespaces {self.namespaces}; uid drop {uid}; "
            f"rlimits on; landlock {self.landlock}; seccomp {self.seccomp}; audit hook + static screen on"
        )

    def apply(self) -> None:
        """In the forked child, before untrusted code: rlimits, Landlock, uid, seccomp (in this order)."""
        cpu = math.ceil(self.limits.cpu_seconds) + 1
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limits.file_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_AS, (self._address_space + self.limits.memory_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
        if self._ruleset is not None:
            self._ruleset.apply()  # no_new_privs, then landlock_restrict_self
            os.close(self._ruleset._fd)
        if self.as_root:
            os.setgroups([])
            os.setresgid(UNPRIVILEGED_UID, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
            os.setresuid(UNPRIVILEGED_UID, UNPRIVILEGED_UID, UNPRIVILEGED_UID)  # clears the capabilities
        else:
            _drop_capabilities()  # an ordinary user may still hold some (ambient, file capabilities)
        # after the uid change, which clears it: a child never outlives its zygote's wall-clock watch
        if _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) or os.getppid() != self._zygote_pid:
            raise OSError("the zygote is gone")
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        os.chdir(self.scratch)
        if self._filter_program is not None:
            _load_seccomp_program(self._filter_program)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


def _drop_capabilities() -> None:
    """capset(2) with empty effective, permitted and inheritable sets (version 3: two 32-bit words)."""
    data = (ctypes.c_uint32 * 6)()
    if _LIBC.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data) != 0:
        raise OSError(ctypes.get_errno(), "dropping capabilities failed")


def _enter_namespaces(as_root: bool, tmp_bytes: int, read_dirs: tuple[str, ...]) -> str:
    """New network and mount namespaces for this process (so its children), a private, bounded /tmp
    that still shows the `read_dirs` under /tmp, read-only.

    Not root, a user namespace (mapping only the caller's own uid and gid) makes this possible
    where the kernel allows unprivileged user namespaces; the children drop its capabilities.
    """
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWNS | _CLONE_NEWNET | (0 if as_root else _CLONE_NEWUSER)
    if _LIBC.unshare(flags) != 0:
        return f"unavailable ({os.strerror(ctypes.get_errno())})"
    if not as_root:
        for path, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{path}", "w") as mapping:
                mapping.write(text)
    if _LIBC.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        return f"network only (private mounts failed: {os.strerror(ctypes.get_errno())})"
    kept = _under_tmp(read_dirs)
    handles = [os.open(path, os.O_PATH | os.O_DIRECTORY) for path in kept]  # this namespace's view, before /tmp
    try:
        options = f"mode=0711,size={tmp_bytes},nr_inodes={_TMP_INODES}".encode()
        if _LIBC.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, options) != 0:
            return f"network only (private /tmp failed: {os.strerror(ctypes.get_errno())})"
        try:
            for path, handle in zip(kept, handles, strict=True):
                _bind_read_only(f"/proc/self/fd/{handle}", path)
        except OSError as error:
            _LIBC.umount2(b"/tmp", _MNT_DETACH)  # the shared /tmp again: the package must stay visible
            return f"network, mount (no private /tmp: binding {error.filename} into it failed: {error.strerror})"
    finally:
        for handle in handles:
            os.close(handle)
    kinds = "network, mount" if as_root else "user, network, mount"
    shown = f", {len(kept)} dir(s) under /tmp bound read-only" if kept else ""
    return f"on ({kinds}, private /tmp of {tmp_bytes >> 20} MiB{shown})"


def _under_tmp(read_dirs: tuple[str, ...]) -> list[str]:
    """The read dirs a private /tmp would hide, outermost only (a dir inside another comes with it)."""
    tmp = os.path.realpath("/tmp") + os.sep
    inside = sorted(os.path.realpath(d) for d in read_dirs if os.path.realpath(d).startswith(tmp))
    return [d for i, d in enumerate(inside) if not any((d + os.sep).startswith(o + os.sep) for o in inside[:i])]


def _bind_read_only(source: str, target: str) -> None:
    """Binds `source` onto `target` (made in the private /tmp), then makes that view read-only."""
    os.makedirs(target, mode=0o755, exist_ok=True)
    if _LIBC.mount(source.encode(), target.encode(), None, _MS_BIND | _MS_REC, None) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), target)
    kept = os.statvfs(target).f_flag
    remount = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
    remount |= sum(flag for st_flag, flag in _KEPT_MOUNT_FLAGS.items() if kept & st_flag)
    if not kept & (os.ST_NOATIME | os.ST_RELATIME):
        remount |= _MS_STRICTATIME  # else the kernel's default, relatime, would change a flag
    if _LIBC.mount(None, target.encode(), None, remount, None) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), target)


def _landlock_ruleset(read_dirs: tuple[str, ...]) -> tuple[object, str]:
    """The ruleset, built once: read the interpreter's and the package's files (scratch: `_allow_scratch`)."""
    try:
        from landlock import FSAccess, Ruleset, landlock_abi_version, plumbing  # noqa: PLC0415 - optional

        abi = landlock_abi_version()
    except ImportError:
        return None, "unavailable (the `landlock` package is not installed)"
    except OSError as error:
        return None, f"unavailable (kernel: {error.strerror})"
    ruleset = Ruleset()
    ruleset.allow(*read_dirs, rules=FSAccess.READ_FILE | FSAccess.READ_DIR)
    plumbing.get_prctl(), plumbing.get_restrict_self()  # resolved here, not in every child
    return ruleset, f"on (ABI {abi})"


def _allow_scratch(ruleset, scratch: str) -> None:
    from landlock import FSAccess  # noqa: PLC0415 - imported by _landlock_ruleset

    # regular files only: no directories (the zygote empties scratch without recursion), links, devices
    rights = FSAccess.READ_FILE | FSAccess.READ_DIR | FSAccess.WRITE_FILE | FSAccess.MAKE_REG | FSAccess.REMOVE_FILE
    ruleset.allow(scratch, rules=rights | (ruleset.restrict_rules & FSAccess.TRUNCATE))


def _compile_seccomp_filter(landlock_active: bool) -> tuple[object, str]:
    """libseccomp builds the filter and compiles it to BPF once; children only load the program.

    It runs in a short-lived forked helper: `pyseccomp` imports `subprocess` and `threading`,
    whose after-fork handlers would otherwise cost every task's fork.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            status, bpf = _seccomp_bpf(landlock_active)
            os.write(write_end, status.encode() + b"\n" + bpf)  # a few KiB: one pipe buffer
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        output = b"".join(iter(lambda: os.read(read_end, 1 << 16), b""))
    finally:
        os.close(read_end)
    if os.waitpid(pid, 0)[1] != 0:
        return None, "unavailable (building the filter failed)"
    status, bpf = output.split(b"\n", 1)
    return (_SockFprog.of(bpf) if bpf else None), status.decode()


def _seccomp_bpf(landlock_active: bool) -> tuple[str, bytes]:
    try:
        import pyseccomp as seccomp  # noqa: PLC0415 - optional layer: reported, not required
    except (ImportError, RuntimeError) as error:  # RuntimeError: libseccomp.so not found
        return f"unavailable ({error})", b""
    syscall_filter = seccomp.SyscallFilter(seccomp.ERRNO(errno.EPERM))
    known = lambda name: seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) >= 0  # noqa: E731
    write_flags_clear = lambda index: seccomp.Arg(index, seccomp.MASKED_EQ, _WRITE_FLAGS, 0)  # noqa: E731
    for name in filter(known, _ALLOWED_SYSCALLS):
        if landlock_active or name not in _PATH_CHANGING:
            if not landlock_active and name in ("open", "openat"):
                syscall_filter.add_rule(seccomp.ALLOW, name, write_flags_clear(1 if name == "open" else 2))
            else:
                syscall_filter.add_rule(seccomp.ALLOW, name)
    for request in _IOCTLS:
        syscall_filter.add_rule(seccomp.ALLOW, "ioctl", seccomp.Arg(1, seccomp.EQ, request))
    for command in _FCNTLS:
        syscall_filter.add_rule(seccomp.ALLOW, "fcntl", seccomp.Arg(1, seccomp.EQ, command))
    # reading one's own limits (resource.getrlimit) is fine; setting anyone's is not
    syscall_filter.add_rule(seccomp.ALLOW, "prlimit64", seccomp.Arg(0, seccomp.EQ, 0), seccomp.Arg(2, seccomp.EQ, 0))
    syscall_filter.add_rule(seccomp.KILL_PROCESS, "prlimit64", seccomp.Arg(2, seccomp.NE, 0))
    for name in filter(known, _FATAL_SYSCALLS):
        syscall_filter.add_rule(seccomp.KILL_PROCESS, name)
    with tempfile.TemporaryFile() as bpf:
        syscall_filter.export_bpf(bpf)
        bpf.seek(0)
        program = bpf.read()
    mode = "" if landlock_active else ", every open for writing refused (no Landlock)"
    return f"on (allow-list, {len(program) // 8} BPF instructions{mode})", program


class _SockFprog(ctypes.Structure):
    """`struct sock_fprog`: the compiled filter handed to prctl(PR_SET_SECCOMP)."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    @classmethod
    def of(cls, bpf: bytes) -> _SockFprog:
        program = cls(len(bpf) // 8, None)
        program.code = ctypes.create_string_buffer(bpf, len(bpf))  # kept alive with the struct
        program.filter = ctypes.addressof(program.code)
        return program


def _load_seccomp_program(program: _SockFprog) -> None:
    libc = _LIBC
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(
        _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0
    ):
        raise OSError(ctypes.get_errno(), "loading the seccomp filter failed")


# Without Landlock nothing limits which paths these reach: refused then.
_PATH_CHANGING = frozenset(
    "mkdir mkdirat unlink unlinkat rmdir rename renameat renameat2 truncate".split()
)


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read VmSize")
