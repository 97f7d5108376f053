/*
 * baseline: a minimal single-threaded C epoll server, the reference point for
 * NetHost's benchmarks. Every connection starts with a PROXY v1 or v2 header.
 *
 *   baseline -w WHOAMI_PORT -e ECHO_PORT [-b 127.0.0.1]
 *
 * On the whoami port it answers "SRCIP SRCPORT\n" (the header's source) and closes;
 * on the echo port it echoes every byte after the header. The header parsing is
 * minimal (enough for TCP4/TCP6/UNKNOWN/LOCAL, TLVs skipped), not a validator.
 * It runs until SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEADER 536 /* 16 + 520: larger v2 headers are refused */

enum kind { LISTEN_WHOAMI = 1, LISTEN_ECHO, WHOAMI, ECHO };

struct conn {
    uint8_t kind, in_header, want_out;
    uint16_t hlen;
    char *hbuf;          /* partial header, only while one is incomplete */
    char *pending;       /* echo bytes the socket did not take yet */
    size_t plen, poff;
};

static struct conn *conns;
static int nconns, epfd;
static volatile sig_atomic_t stop;
static char iobuf[65536];

static void on_signal(int sig) { (void)sig; stop = 1; }

static int listen_on(const char *addr, int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, addr, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1024) < 0) {
        perror("baseline: bind/listen");
        exit(1);
    }
    return fd;
}

static void drop(int fd) {
    struct conn *c = &conns[fd];
    free(c->hbuf);
    free(c->pending);
    memset(c, 0, sizeof *c);
    close(fd);
}

/* Parses a header at buf[0..len). Returns its length, 0 if more bytes are
 * needed, -1 if it is invalid. Writes the source "ip port" into who. */
static int parse_header(int fd, const unsigned char *buf, size_t len, char *who, size_t wholen) {
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    if (len >= 1 && buf[0] == 'P') {
        const unsigned char *end = memchr(buf, '\n', len < 108 ? len : 108);
        if (!end) return len >= 108 ? -1 : 0;
        if (end == buf || end[-1] != '\r' || len < 6 || memcmp(buf, "PROXY ", 6) != 0) return -1;
        char line[108];
        size_t n = (size_t)(end - buf - 1);
        memcpy(line, buf, n);
        line[n] = 0;
        char *save = NULL, *f[6] = {0};
        int k = 0;
        for (char *t = strtok_r(line, " ", &save); t && k < 6; t = strtok_r(NULL, " ", &save)) f[k++] = t;
        if (k == 6 && (!strcmp(f[1], "TCP4") || !strcmp(f[1], "TCP6")))
            snprintf(who, wholen, "%s %s\n", f[2], f[4]);
        else
            goto peer;
        return (int)(end - buf + 1);
    }
    if (len < 16) return memcmp(buf, sig, len) == 0 ? 0 : -1;
    if (memcmp(buf, sig, 12) != 0 || (buf[12] & 0xF0) != 0x20) return -1;
    size_t total = 16 + ((size_t)buf[14] << 8 | buf[15]);
    if (total > MAX_HEADER) return -1;
    if (len < total) return 0;
    if ((buf[12] & 0x0F) == 1 && buf[13] == 0x11 && total >= 28) {
        snprintf(who, wholen, "%u.%u.%u.%u %u\n", buf[16], buf[17], buf[18], buf[19], (unsigned)(buf[24] << 8 | buf[25]));
        return (int)total;
    }
    if ((buf[12] & 0x0F) == 1 && buf[13] == 0x21 && total >= 52) {
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, buf + 16, ip, sizeof ip);
        snprintf(who, wholen, "%s %u\n", ip, (unsigned)(buf[48] << 8 | buf[49]));
        return (int)total;
    }
    {
        int consumed = (int)total;
        goto peer_with;
    peer:
        consumed = (int)(memchr(buf, '\n', len) ? (const unsigned char *)memchr(buf, '\n', len) - buf + 1 : -1);
    peer_with:;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        char ip[INET6_ADDRSTRLEN] = "?";
        unsigned p = 0;
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET) {
                struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
                inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
                p = ntohs(s4->sin_port);
            } else {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
                inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
                p = ntohs(s6->sin6_port);
            }
        }
        snprintf(who, wholen, "%s %u\n", ip, p);
        return consumed;
    }
}

static void watch(int fd, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Sends bytes on an echo connection; keeps what the socket does not take. */
static int echo_out(int fd, const char *data, size_t len) {
    struct conn *c = &conns[fd];
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN) return -1;
            c->pending = malloc(len);
            if (!c->pending) return -1;
            memcpy(c->pending, data, len);
            c->plen = len;
            c->poff = 0;
            watch(fd, EPOLLOUT); /* stop reading until it has gone out */
            return 0;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void on_readable(int fd) {
    struct conn *c = &conns[fd];
    for (int rounds = 0; rounds < 1; rounds++) { /* level-triggered: one read per event */
        ssize_t n = recv(fd, iobuf, sizeof iobuf, 0);
        if (n == 0) { drop(fd); return; }
        if (n < 0) {
            if (errno == EAGAIN) return;
            drop(fd);
            return;
        }
        const char *data = iobuf;
        size_t len = (size_t)n;
        if (c->in_header) {
            const unsigned char *hb = (const unsigned char *)iobuf;
            size_t hl = len;
            if (c->hbuf || len < 16) { /* rare: the header arrives in pieces */
                if (!c->hbuf && !(c->hbuf = malloc(MAX_HEADER + sizeof iobuf))) { drop(fd); return; }
                if (c->hlen + len > MAX_HEADER + sizeof iobuf) { drop(fd); return; }
                memcpy(c->hbuf + c->hlen, iobuf, len);
                c->hlen += (uint16_t)len;
                hb = (const unsigned char *)c->hbuf;
                hl = c->hlen;
            }
            char who[96];
            int used = parse_header(fd, hb, hl, who, sizeof who);
            if (used < 0) { drop(fd); return; }
            if (used == 0) {
                if (!c->hbuf) { /* keep the first piece */
                    if (!(c->hbuf = malloc(MAX_HEADER + sizeof iobuf))) { drop(fd); return; }
                    memcpy(c->hbuf, iobuf, len);
                    c->hlen = (uint16_t)len;
                }
                continue;
            }
            c->in_header = 0;
            if (c->kind == WHOAMI) {
                send(fd, who, strlen(who), MSG_NOSIGNAL);
                drop(fd);
                return;
            }
            /* echo what followed the header */
            size_t rest = hl - (size_t)used;
            if (rest > 0) {
                if (echo_out(fd, (const char *)hb + used, rest) < 0) { drop(fd); return; }
            }
            free(c->hbuf);
            c->hbuf = NULL;
            c->hlen = 0;
            if (c->pending) return;
            continue;
        }
        if (echo_out(fd, data, len) < 0) { drop(fd); return; }
        if (c->pending) return;
    }
}

static void on_writable(int fd) {
    struct conn *c = &conns[fd];
    while (c->poff < c->plen) {
        ssize_t n = send(fd, c->pending + c->poff, c->plen - c->poff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) return;
            drop(fd);
            return;
        }
        c->poff += (size_t)n;
    }
    free(c->pending);
    c->pending = NULL;
    c->plen = c->poff = 0;
    watch(fd, EPOLLIN);
    on_readable(fd);
}

int main(int argc, char **argv) {
    int wport = 0, eport = 0, opt;
    const char *addr = "127.0.0.1";
    while ((opt = getopt(argc, argv, "w:e:b:")) != -1) {
        if (opt == 'w') wport = atoi(optarg);
        else if (opt == 'e') eport = atoi(optarg);
        else if (opt == 'b') addr = optarg;
        else { fprintf(stderr, "usage: baseline -w WHOAMI_PORT -e ECHO_PORT [-b ADDR]\n"); return 2; }
    }
    if (!wport || !eport) { fprintf(stderr, "usage: baseline -w WHOAMI_PORT -e ECHO_PORT [-b ADDR]\n"); return 2; }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    nconns = rl.rlim_cur > 1048576 ? 1048576 : (int)rl.rlim_cur;
    conns = calloc((size_t)nconns, sizeof *conns);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    int lw = listen_on(addr, wport), le = listen_on(addr, eport);
    conns[lw].kind = LISTEN_WHOAMI;
    conns[le].kind = LISTEN_ECHO;
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = lw; epoll_ctl(epfd, EPOLL_CTL_ADD, lw, &ev);
    ev.data.fd = le; epoll_ctl(epfd, EPOLL_CTL_ADD, le, &ev);
    fprintf(stderr, "baseline: whoami on %s:%d, echo on %s:%d\n", addr, wport, addr, eport);
    struct epoll_event events[256];
    while (!stop) {
        int n = epoll_wait(epfd, events, 256, 500);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            struct conn *c = &conns[fd];
            if (c->kind == LISTEN_WHOAMI || c->kind == LISTEN_ECHO) {
                for (int k = 0; k < 64; k++) {
                    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break;
                    if (cfd >= nconns) { close(cfd); continue; }
                    conns[cfd].kind = c->kind == LISTEN_WHOAMI ? WHOAMI : ECHO;
                    conns[cfd].in_header = 1;
                    int one = 1;
                    if (conns[cfd].kind == ECHO) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            if (!c->kind) continue;
            if (events[i].events & EPOLLOUT) on_writable(fd);
            else on_readable(fd);
        }
    }
    return 0;
}
