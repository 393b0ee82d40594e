#!/usr/bin/env python3
"""Drive `blobcli ... shell` through a pseudo-terminal, as a person would.

Checks the blob> prompt, tab completion of a command, of a long option and
of a blob id, history recall (^P), an error that does not end the shell,
$B1, and a clean quit (exit 0). Usage: pty_shell.py BLOBCLI [GLOBAL-OPTIONS]
Exit 0 on success; on failure prints what it saw and exits 1.
"""
import os
import pty
import select
import sys
import time


class Pty:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["TERM"] = "xterm"
            os.environ["BLOBCLI_HISTFILE"] = ""
            os.execv(argv[0], argv)
        self.buf = b""
        self.log = b""

    def expect(self, pat, timeout=20.0):
        """Wait until @pat appears; return everything up to and including it."""
        pat = pat.encode()
        end = time.time() + timeout
        while pat not in self.buf:
            left = end - time.time()
            r, _, _ = select.select([self.fd], [], [], max(0.0, left))
            data = b""
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
            if not data:
                fail("timed out or EOF waiting for %r" % pat, self.log + self.buf)
            self.buf += data
        i = self.buf.index(pat) + len(pat)
        seen, self.buf = self.buf[:i], self.buf[i:]
        self.log += seen
        return seen.decode(errors="replace")

    def send(self, s):
        os.write(self.fd, s.encode())

    def wait(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                os.read(self.fd, 65536)
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        fail("shell did not exit", self.log)


def fail(msg, log=b""):
    sys.stdout.write("pty_shell: FAIL: %s\n--- transcript ---\n%s\n" %
                     (msg, log.decode(errors="replace")))
    sys.exit(1)


def main():
    sh = Pty(sys.argv[1:] + ["shell"])
    sh.expect("blob> ")
    # Command completion: "crea<TAB>" is unique -> "create ".
    sh.send("crea\t--si\t2M\r")
    out = sh.expect("created blob 0x")
    sh.expect("blob> ")
    # A bad command: one error line, and the shell keeps going.
    sh.send("frobnicate\r")
    sh.expect("unknown command 'frobnicate'")
    sh.expect("blob> ")
    # Id completion: the store is loaded and holds one blob.
    sh.send("xattr set 0x\tcolour blue\r")
    sh.expect("blob> ")
    sh.send("xattr get $B1 colour\r")
    sh.expect("blue")
    sh.expect("blob> ")
    # History: ^P twice recalls "xattr set ..." ... once is "xattr get".
    sh.send("lis\t\r")
    sh.expect("ALLOCATED")
    sh.expect("blob> ")
    sh.send("\x10\r")  # ^P: the previous line (list) again
    sh.expect("ALLOCATED")
    sh.expect("blob> ")
    sh.send("quit\r")
    rc = sh.wait()
    if rc != 0:
        fail("exit code %d after quit" % rc, sh.log)
    print("pty_shell: ok (%s)" % out.strip().splitlines()[-1][:60])


if __name__ == "__main__":
    main()
