"""What a process holds, read from /proc: shared by the soak and buffer scripts."""
import os

def rss_kib(pid):
    """Resident memory in KiB (VmRSS), 0 if not found."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def fd_count(pid):
    """Open file descriptors."""
    return len(os.listdir(f"/proc/{pid}/fd"))
