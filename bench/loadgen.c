/*
 * loadgen: an epoll load generator for PROXY-protocol servers on loopback.
 *
 *   loadgen -m connrate -p PORT [-v 1|2] [-c 50] [-d 5] [-w 1] [-n MAX] [-P PID[,PID]]
 *       connect, send a PROXY header naming a different source address each time,
 *       read the reply until EOF, check it is "SRCIP SRCPORT\n", close; -c in flight.
 *       With -k the client closes first: as soon as the whole line is in, for a
 *       service that keeps its connection open until the client goes.
 *   loadgen -m echo -p PORT [-v 2] [-s 64] [-c 50] [-d 5] [-w 1] [-P PID]
 *       -c persistent connections (one header each), each ping-pongs -s bytes and
 *       checks every byte that comes back.
 *   loadgen -m idle -p PORT [-v 2] [-c 2000] [-P PID]
 *       opens -c proxied connections to an echo service, round-trips one byte on each
 *       (so the service holds every one), waits, and reports the RSS delta of -P.
 *
 * Prints exactly one summary line of key=value pairs on stdout. Server CPU comes
 * from /proc/PID/stat (utime+stime, all threads, dead ones included) sampled at the
 * start and end of the measured window; the load generator's own CPU from getrusage.
 * The split into user space (utime) and kernel (stime) is the kernel's own, made by
 * sampling at each clock tick: exact enough over seconds, not over a few ticks.
 * Every loop is bounded: by -d seconds (plus a short drain), by -n, and by a hard
 * wall-clock limit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum mode { CONNRATE, ECHO, IDLE };
enum cstate { C_FREE, C_CONNECTING, C_READING, C_WRITING };

struct conn {
    int fd;
    enum cstate state;
    uint32_t seq;        /* which source address this connection announced */
    uint64_t t_start;    /* ns: connect start (connrate) or message start (echo) */
    size_t sent, got;    /* echo: bytes of the current message sent / received */
    char reply[96];
    size_t reply_len;
};

static enum mode mode = CONNRATE;
static const char *host = "127.0.0.1";
static int port = 0, version = 2, inflight = 50, msg_size = 64;
static int client_closes = 0;   /* -k: connrate closes once the line is in, not at EOF */
static double duration = 5, warmup = 1;
static long max_count = 0;
static char *pids_arg = NULL;
static const char *label = "-";
static int pids[8], npids = 0;
static struct sockaddr_in dst;
static int epfd;
static struct conn *conns;
static char *pattern, *scratch;
static size_t scratch_size;

/* results */
static uint32_t *samples;          /* latencies in ns, capped */
static size_t nsamples, cap_samples = 4u << 20;
static long done_count, errors, mismatches, measuring, started;
static uint64_t bytes_echoed;
static uint32_t next_seq;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* ---- /proc readings ---- */
/* user and system CPU seconds of one process (all threads); false if it is gone */
static int proc_cpu_split(int pid, double *user, double *sys) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    unsigned long utime = 0, stime = 0;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return 0;
    *user = (double)utime / (double)sysconf(_SC_CLK_TCK);
    *sys = (double)stime / (double)sysconf(_SC_CLK_TCK);
    return 1;
}

/* CPU seconds of the measured servers; *user gets the part spent outside the kernel */
static double servers_cpu(double *user) {
    double total = 0, user_total = 0;
    for (int i = 0; i < npids; i++) {
        double u, k;
        if (!proc_cpu_split(pids[i], &u, &k)) return -1;
        total += u + k;
        user_total += u;
    }
    *user = user_total;
    return total;
}

static long proc_rss_kb(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) { kb = strtol(line + 6, NULL, 10); break; }
    fclose(f);
    return kb;
}

static long servers_rss_kb(void) {
    long total = 0;
    for (int i = 0; i < npids; i++) {
        long kb = proc_rss_kb(pids[i]);
        if (kb < 0) return -1;
        total += kb;
    }
    return total;
}

/* busy CPU seconds of the whole machine (all cores), from /proc/stat */
static double machine_busy_seconds(void) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8) return -1;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- PROXY headers with a varying source: 198.18.0.0/15 (RFC 2544), ports 1024.. ---- */
static void source_of(uint32_t seq, uint32_t *ip, uint16_t *sport) {
    *ip = (198u << 24) | (18u << 16) | (seq % 131072u);
    *sport = (uint16_t)(1024 + seq % 64000u);
}

static size_t make_header(uint32_t seq, char *out) {
    uint32_t ip; uint16_t sport;
    source_of(seq, &ip, &sport);
    if (version == 1) {
        return (size_t)sprintf(out, "PROXY TCP4 %u.%u.%u.%u 127.0.0.1 %u %d\r\n",
                               ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, sport, port);
    }
    if (version == 2) {
        static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
        unsigned char *p = (unsigned char *)out;
        memcpy(p, sig, 12);
        p[12] = 0x21; p[13] = 0x11; p[14] = 0; p[15] = 12;
        uint32_t src = htonl(ip), dstip = htonl(0x7f000001);
        uint16_t sp = htons(sport), dp = htons((uint16_t)port);
        memcpy(p + 16, &src, 4); memcpy(p + 20, &dstip, 4);
        memcpy(p + 24, &sp, 2); memcpy(p + 26, &dp, 2);
        return 28;
    }
    return 0;
}

static size_t expected_reply(uint32_t seq, char *out) {
    uint32_t ip; uint16_t sport;
    source_of(seq, &ip, &sport);
    return (size_t)sprintf(out, "%u.%u.%u.%u %u\n", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, sport);
}

/* ---- connection life ---- */
static void record(uint64_t t0) {
    if (!measuring) return;
    uint64_t d = now_ns() - t0;
    if (nsamples < cap_samples) samples[nsamples++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static void close_conn(struct conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = C_FREE;
}

static int start_conn(struct conn *c, int first_payload) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { errors++; return -1; }
    if (mode != CONNRATE) {  /* connrate writes once per connection: Nagle never waits there */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->fd = fd;
    c->seq = next_seq++;
    c->t_start = now_ns();
    c->reply_len = 0;
    c->sent = c->got = 0;
    started++;
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        errors++;
        close(fd);
        c->fd = -1;
        return -1;
    }
    (void)first_payload;
    if (mode == CONNRATE) {
        /* On loopback the handshake is usually done when connect() returns: send the
         * header at once and wait only for the reply (fewer load-generator syscalls). */
        char hdr[128];
        size_t hl = make_header(c->seq, hdr);
        if (hl && send(fd, hdr, hl, MSG_NOSIGNAL) == (ssize_t)hl) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            c->state = C_READING;
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add");
            return 0;
        }
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    c->state = C_CONNECTING;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add");
    return 0;
}

static void set_events(struct conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod");
}

/* echo: send what is left of the current message; 1 when all of it is out */
static int echo_send(struct conn *c) {
    while (c->sent < (size_t)msg_size) {
        ssize_t n = send(c->fd, pattern + c->sent, (size_t)msg_size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) return 0;
            return -1;
        }
        c->sent += (size_t)n;
    }
    return 1;
}

static int can_start_more(uint64_t deadline) {
    if (now_ns() >= deadline) return 0;
    if (max_count > 0 && started >= max_count) return 0;
    return 1;
}

static void handle(struct conn *c, uint32_t events, uint64_t deadline) {
    if (c->state == C_CONNECTING) {
        if (events & (EPOLLERR | EPOLLHUP)) goto fail;
        char hdr[128];
        size_t hl = make_header(c->seq, hdr);
        if (hl && send(c->fd, hdr, hl, MSG_NOSIGNAL) != (ssize_t)hl) goto fail;  /* a fresh socket takes 108 bytes */
        if (mode == CONNRATE) {
            c->state = C_READING;
            set_events(c, EPOLLIN);
        } else {
            c->t_start = now_ns();
            c->sent = c->got = 0;
            int r = echo_send(c);
            if (r < 0) goto fail;
            c->state = r ? C_READING : C_WRITING;
            set_events(c, r ? EPOLLIN : EPOLLIN | EPOLLOUT);
        }
        return;
    }
    if (mode == CONNRATE) {
        for (;;) {
            ssize_t n = recv(c->fd, c->reply + c->reply_len, sizeof c->reply - 1 - c->reply_len, 0);
            if (n > 0) {
                c->reply_len += (size_t)n;
                if (c->reply_len >= sizeof c->reply - 1) goto mismatch;
                if (client_closes && c->reply[c->reply_len - 1] == '\n') break;
                continue;
            }
            if (n < 0 && errno == EAGAIN) return;
            if (n < 0) goto fail;
            break;  /* EOF */
        }
        char want[96];
        size_t wl = expected_reply(c->seq, want);
        if (wl != c->reply_len || memcmp(want, c->reply, wl) != 0) goto mismatch;
        record(c->t_start);
        if (measuring) done_count++;
        close_conn(c);
        if (can_start_more(deadline)) start_conn(c, 0);
        return;
    mismatch:
        if (mismatches < 3) {
            c->reply[c->reply_len] = 0;
            fprintf(stderr, "loadgen: reply mismatch: got '%s'\n", c->reply);
        }
        mismatches++;
        close_conn(c);
        if (can_start_more(deadline)) start_conn(c, 0);
        return;
    }
    /* echo and idle */
    if ((events & EPOLLOUT) && c->state == C_WRITING) {
        int r = echo_send(c);
        if (r < 0) goto fail;
        if (r) { c->state = C_READING; set_events(c, EPOLLIN); }
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
            size_t want = (size_t)msg_size - c->got;
            if (want == 0) break;
            ssize_t n = recv(c->fd, scratch, want < scratch_size ? want : scratch_size, 0);
            if (n > 0) {
                if (c->got + (size_t)n > c->sent || memcmp(scratch, pattern + c->got, (size_t)n) != 0) {
                    mismatches++;
                    goto fail_quiet;
                }
                c->got += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EAGAIN) break;
            goto fail;  /* EOF or error in the middle of a ping-pong */
        }
        if (c->got == (size_t)msg_size) {
            record(c->t_start);
            if (measuring) { done_count++; bytes_echoed += (uint64_t)msg_size; }
            if (mode == IDLE) { c->state = C_FREE; set_events(c, 0); return; }  /* hold it */
            if (!can_start_more(deadline)) { close_conn(c); return; }
            started++;
            c->t_start = now_ns();
            c->sent = c->got = 0;
            int r = echo_send(c);
            if (r < 0) goto fail;
            if (!r) { c->state = C_WRITING; set_events(c, EPOLLIN | EPOLLOUT); }
        }
    }
    return;
fail:
    errors++;
fail_quiet:
    close_conn(c);
    if (mode == CONNRATE && can_start_more(deadline)) start_conn(c, 0);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (nsamples == 0) return 0;
    size_t i = (size_t)(p * (double)(nsamples - 1));
    return samples[i] / 1000.0;
}

static int count_active(void) {
    int n = 0;
    for (int i = 0; i < inflight; i++) if (conns[i].state != C_FREE) n++;
    return n;
}

static void usage(void) {
    fprintf(stderr, "usage: loadgen -m connrate|echo|idle -p PORT [-H host] [-v 0|1|2] [-c N] [-s SIZE] "
                    "[-d SEC] [-w SEC] [-n MAX] [-P PID[,PID..]] [-l LABEL] [-k]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "m:H:p:v:c:s:d:w:n:P:l:k")) != -1) {
        switch (opt) {
        case 'm':
            if (!strcmp(optarg, "connrate")) mode = CONNRATE;
            else if (!strcmp(optarg, "echo")) mode = ECHO;
            else if (!strcmp(optarg, "idle")) mode = IDLE;
            else usage();
            break;
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'v': version = atoi(optarg); break;
        case 'c': inflight = atoi(optarg); break;
        case 's': msg_size = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'n': max_count = atol(optarg); break;
        case 'P': pids_arg = optarg; break;
        case 'l': label = optarg; break;
        case 'k': client_closes = 1; break;
        default: usage();
        }
    }
    if (port <= 0 || inflight <= 0 || msg_size <= 0 || duration <= 0 || duration > 120 || warmup < 0 || warmup > 60) usage();
    if (version < 0 || version > 2) usage();
    if (mode == IDLE) { msg_size = 1; if (inflight > 100000) usage(); }
    if (pids_arg) {
        char *copy = strdup(pids_arg), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && npids < 8; t = strtok_r(NULL, ",", &save)) pids[npids++] = atoi(t);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }

    memset(&dst, 0, sizeof dst);
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) usage();

    pattern = malloc((size_t)msg_size);
    for (int i = 0; i < msg_size; i++) pattern[i] = (char)('a' + (i * 7) % 26);
    scratch_size = msg_size < 65536 ? (size_t)msg_size : 65536;
    scratch = malloc(scratch_size);
    samples = malloc(cap_samples * sizeof *samples);
    conns = calloc((size_t)inflight, sizeof *conns);
    if (!pattern || !scratch || !samples || !conns) die("malloc");
    for (int i = 0; i < inflight; i++) conns[i].fd = -1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");

    struct epoll_event events[256];
    uint64_t t_begin = now_ns();
    uint64_t hard_stop = t_begin + (uint64_t)((warmup + duration + 30) * 1e9);

    if (mode == IDLE) {
        /* Open connections 200 at a time, each with one byte round-tripped. */
        long rss0 = servers_rss_kb();
        measuring = 1;
        int opened = 0;
        while (opened < inflight && now_ns() < hard_stop) {
            int batch = inflight - opened < 200 ? inflight - opened : 200;
            for (int i = 0; i < batch; i++) start_conn(&conns[opened + i], 1);
            uint64_t batch_deadline = now_ns() + 10000000000ull;
            while (now_ns() < batch_deadline) {
                int busy = 0;
                for (int i = 0; i < batch; i++) if (conns[opened + i].state != C_FREE) busy++;
                if (!busy) break;
                int n = epoll_wait(epfd, events, 256, 100);
                for (int i = 0; i < n; i++) handle(events[i].data.ptr, events[i].events, UINT64_MAX);
            }
            opened += batch;
        }
        int held = 0;
        for (int i = 0; i < inflight; i++) if (conns[i].fd >= 0) held++;
        /* let the server settle, then read its RSS while every connection is held */
        struct timespec settle = {.tv_sec = (time_t)duration, .tv_nsec = (long)((duration - (time_t)duration) * 1e9)};
        nanosleep(&settle, NULL);
        long rss1 = servers_rss_kb();
        for (int i = 0; i < inflight; i++) close_conn(&conns[i]);
        double kb_per = held > 0 && rss0 >= 0 && rss1 >= 0 ? (double)(rss1 - rss0) / held : -1;
        printf("mode=idle label=%s port=%d v=%d requested=%d held=%d errors=%ld mismatches=%ld "
               "rss_before_kb=%ld rss_after_kb=%ld kb_per_conn=%.2f lg_cpu_s=%.3f\n",
               label, port, version, inflight, held, errors, mismatches, rss0, rss1, kb_per, self_cpu_seconds());
        return errors || mismatches || held != inflight ? 1 : 0;
    }

    for (int i = 0; i < inflight; i++) start_conn(&conns[i], 1);
    uint64_t t_measure = t_begin + (uint64_t)(warmup * 1e9);
    uint64_t t_end = t_measure + (uint64_t)(duration * 1e9);
    double cpu0 = -1, lg0 = 0, m0 = 0, m1 = 0, user0 = 0, user1 = 0;
    uint64_t t0 = 0, t1 = 0;
    double cpu1 = -1, lg1 = 0;
    long count_at_end = 0;
    uint64_t bytes_at_end = 0;

    for (;;) {
        uint64_t t = now_ns();
        if (!measuring && t0 == 0 && t >= t_measure) {
            measuring = 1; t0 = t; cpu0 = servers_cpu(&user0); lg0 = self_cpu_seconds(); m0 = machine_busy_seconds();
        }
        if (measuring && t >= t_end) {
            t1 = t; cpu1 = servers_cpu(&user1); lg1 = self_cpu_seconds(); m1 = machine_busy_seconds();
            count_at_end = done_count; bytes_at_end = bytes_echoed;
            measuring = 0;
        }
        if (t1 && (count_active() == 0 || t >= t1 + 2000000000ull)) break;  /* drain in flight, at most 2 s */
        if (t >= hard_stop) break;
        if (max_count > 0 && started >= max_count && count_active() == 0) {
            if (measuring) { t1 = now_ns(); cpu1 = servers_cpu(&user1); lg1 = self_cpu_seconds(); m1 = machine_busy_seconds(); count_at_end = done_count; bytes_at_end = bytes_echoed; measuring = 0; }
            break;
        }
        int n = epoll_wait(epfd, events, 256, 50);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        uint64_t deadline = t1 ? 0 : t_end;
        for (int i = 0; i < n; i++) handle(events[i].data.ptr, events[i].events, deadline);
        if (mode == CONNRATE && !t1) {  /* refill slots lost to errors */
            for (int i = 0; i < inflight; i++) if (conns[i].state == C_FREE && can_start_more(deadline)) start_conn(&conns[i], 0);
        }
    }
    for (int i = 0; i < inflight; i++) close_conn(&conns[i]);

    double secs = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    double server_cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    double lg_cpu = lg1 - lg0;
    qsort(samples, nsamples, sizeof *samples, cmp_u32);
    const char *unit = mode == CONNRATE ? "conn" : "msg";
    printf("mode=%s label=%s port=%d v=%d c=%d size=%d secs=%.3f count=%ld rate=%.0f mb_s=%.1f "
           "errors=%ld mismatches=%ld p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f "
           "server_cpu_s=%.3f server_cpu_pct=%.1f server_us_per_%s=%.2f server_user_us_per_%s=%.2f server_sys_us_per_%s=%.2f lg_cpu_pct=%.1f lg_us_per_%s=%.2f other_cpu_pct=%.1f\n",
           mode == CONNRATE ? "connrate" : "echo", label, port, version, inflight, mode == CONNRATE ? 0 : msg_size,
           secs, count_at_end, secs > 0 ? count_at_end / secs : 0,
           secs > 0 ? (double)bytes_at_end / secs / 1e6 : 0, errors, mismatches,
           pct(0.50), pct(0.90), pct(0.99), nsamples ? samples[nsamples - 1] / 1000.0 : 0,
           server_cpu, secs > 0 && server_cpu >= 0 ? 100 * server_cpu / secs : -1,
           unit, count_at_end > 0 && server_cpu >= 0 ? 1e6 * server_cpu / count_at_end : -1,
           unit, count_at_end > 0 && server_cpu >= 0 ? 1e6 * (user1 - user0) / count_at_end : -1,
           unit, count_at_end > 0 && server_cpu >= 0 ? 1e6 * (server_cpu - (user1 - user0)) / count_at_end : -1,
           secs > 0 ? 100 * lg_cpu / secs : 0, unit, count_at_end > 0 ? 1e6 * lg_cpu / count_at_end : -1,
           secs > 0 && server_cpu >= 0 ? 100 * ((m1 - m0) - server_cpu - lg_cpu) / secs : -1);
    return count_at_end > 0 && errors == 0 && mismatches == 0 ? 0 : 1;
}
