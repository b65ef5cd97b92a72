/*
 * guest.c: the C guest agent, for the targets Rust cannot build (alpha and
 * hppa have no LLVM backend). It speaks the same line protocol as the Rust
 * guest (conformance/agent/src/guest.rs, "Protocol"), performs the same cases
 * with real system calls, and decodes every buffer with this target's own
 * C headers and libc macros (CMSG_FIRSTHDR, CMSG_NXTHDR, struct
 * sock_extended_err). The host runner re-decodes every raw buffer with
 * msgzc-cmsg and requires the same answer: a differential check between
 * the C ABI of the target and the Rust tables.
 *
 * It assumes nothing about its environment: it brings lo up itself, and
 * as PID 1 on a bare kernel (the system tier, conformance/src/system.rs)
 * it also mounts /proc, quiets the kernel's console messages, prints
 * "NOTE kernel=RELEASE machine=MACHINE" and at the end powers the machine
 * off (sync, reboot(RB_POWER_OFF)), which makes QEMU exit.
 *
 * Build: <cross>-gcc -O1 -Wall -Werror -static [-Wl,--no-relax on alpha]
 *        -o guest guest.c   (abi_facts.c must sit beside it)
 * Run:   guest [CASE...]    (no argument: every case, in order)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <linux/errqueue.h>

#ifndef TARGET_NAME
#if defined(__alpha__)
#define TARGET_NAME "alpha"
#elif defined(__hppa__)
#define TARGET_NAME "hppa"
#elif defined(__x86_64__)
#define TARGET_NAME "x86_64"
#elif defined(__i386__)
#define TARGET_NAME "i686"
#elif defined(__aarch64__)
#define TARGET_NAME "aarch64"
#elif defined(__arm__)
#define TARGET_NAME "armv7"
#elif defined(__riscv) && __riscv_xlen == 64
#define TARGET_NAME "riscv64"
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
#define TARGET_NAME "powerpc64le"
#elif defined(__powerpc__) && !defined(__powerpc64__)
#define TARGET_NAME "powerpc"
#elif defined(__s390x__)
#define TARGET_NAME "s390x"
#elif defined(__mips__) && _MIPS_SIM == _ABI64 && defined(__MIPSEB__)
#define TARGET_NAME "mips64"
#elif defined(__mips__) && _MIPS_SIM == _ABI64
#define TARGET_NAME "mips64el"
#elif defined(__mips__) && defined(__MIPSEB__)
#define TARGET_NAME "mips"
#elif defined(__mips__)
#define TARGET_NAME "mipsel"
#elif defined(__sparc__) && defined(__arch64__)
#define TARGET_NAME "sparc64"
#else
#define TARGET_NAME "unknown"
#endif
#endif

#define ABI_FACTS_LIBRARY
#include "abi_facts.c"

/* The v8 proposal's numbers (never merged, so in no header). */
#if defined(__hppa__)
#define SCM_ZC_NOTIFICATION 0x404C
#elif defined(__sparc__)
#define SCM_ZC_NOTIFICATION 0x0057
#else
#define SCM_ZC_NOTIFICATION 78
#endif
#define ZC_MAX 16
#define ZC_ELEM 12			/* sizeof(struct zc_info_elem), padded */
#define ZC_DATA (4 + ZC_MAX * ZC_ELEM)	/* struct zc_info + ZC_MAX elements */
#define ZC_POISON 0xa5

#define SENDS 16			/* sends per zerocopy case */
#define PAYLOAD 1000

typedef union {
	struct cmsghdr align;
	unsigned char b[512];
} ctlbuf;

/* ---- output ---------------------------------------------------------- */

static void hex(const unsigned char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf("%02x", b[i]);
}

/* A word for a key=value line: spaces become underscores. */
static void word(const char *s)
{
	for (; *s; s++)
		putchar(*s == ' ' ? '_' : *s);
}

static void end(const char *c, const char *status, const char *detail)
{
	printf("END case=%s status=%s detail=", c, status);
	word(detail);
	printf("\n");
}

static void call(const char *name, long ret, int err)
{
	printf("CALL name=%s ret=%ld errno=%d\n", name, ret, ret < 0 ? err : 0);
}

/* Completion bookkeeping: how often each send id was completed. */
struct cover {
	int count[SENDS];
	long ids;		/* ids covered, counting repeats */
	int bogus;		/* ids outside 0..SENDS-1 */
	int uncopied;		/* ranges without the copied bit */
	int ranges;
};

static void cover_range(struct cover *cv, uint32_t lo, uint32_t hi, int copied)
{
	uint32_t id = lo;

	cv->ranges++;
	if (!copied)
		cv->uncopied++;
	for (;;) {
		cv->ids++;
		if (id < SENDS)
			cv->count[id]++;
		else
			cv->bogus++;
		if (id == hi || cv->bogus > 1000)
			break;
		id++;
	}
}

static int cover_exact(const struct cover *cv, char *why, size_t n)
{
	int i;

	if (cv->bogus) {
		snprintf(why, n, "%d completions of ids never sent", cv->bogus);
		return 0;
	}
	for (i = 0; i < SENDS; i++) {
		if (cv->count[i] != 1) {
			snprintf(why, n, "send %d completed %d times", i, cv->count[i]);
			return 0;
		}
	}
	if (cv->uncopied) {
		snprintf(why, n, "%d loopback ranges without the copied bit",
			 cv->uncopied);
		return 0;
	}
	snprintf(why, n, "%d sends released once each in %d ranges", SENDS,
		 cv->ranges);
	return 1;
}

/*
 * Prints one raw control buffer with this guest's own decoding (glibc's
 * CMSG macros), and applies zerocopy ranges to cv if given.
 */
static void raw(const char *dir, unsigned char *buf, size_t controllen,
		int flags, struct cover *cv)
{
	struct msghdr m;
	struct cmsghdr *c;
	char msgs[1024] = "", ranges[1024] = "", items[1024] = "";
	size_t mo = 0, ro = 0, io = 0;

	memset(&m, 0, sizeof(m));
	m.msg_control = buf;
	m.msg_controllen = controllen;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		size_t dlen = c->cmsg_len >= CMSG_LEN(0) ? c->cmsg_len - CMSG_LEN(0) : 0;
		int recverr = (c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
			      (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR);

		if (c->cmsg_len < CMSG_LEN(0))
			break;
		if (mo < sizeof(msgs))
			mo += snprintf(msgs + mo, sizeof(msgs) - mo, "%s%d:%d:%zu",
				       mo ? "," : "", c->cmsg_level, c->cmsg_type, dlen);
		if (recverr && dlen >= sizeof(struct sock_extended_err)) {
			struct sock_extended_err ee;

			memcpy(&ee, CMSG_DATA(c), sizeof(ee));
			if (ee.ee_errno == 0 && ee.ee_origin == SO_EE_ORIGIN_ZEROCOPY) {
				int copied = (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) != 0;

				if (ro < sizeof(ranges))
					ro += snprintf(ranges + ro, sizeof(ranges) - ro,
						       "%s%u-%u-%d", ro ? "," : "",
						       ee.ee_info, ee.ee_data, copied);
				if (cv)
					cover_range(cv, ee.ee_info, ee.ee_data, copied);
			} else if (io < sizeof(items)) {
				io += snprintf(items + io, sizeof(items) - io,
					       "%sext:%u:%u:%u:%u", io ? "," : "",
					       ee.ee_errno, ee.ee_origin, ee.ee_type,
					       ee.ee_code);
			}
		} else if (c->cmsg_level == SOL_SOCKET &&
			   (c->cmsg_type == SO_TIMESTAMPING_OLD ||
			    c->cmsg_type == SO_TIMESTAMPING_NEW) && io < sizeof(items)) {
			io += snprintf(items + io, sizeof(items) - io, "%sts",
				       io ? "," : "");
		}
	}
	printf("RAW dir=%s controllen=%zu flags=%d hex=", dir, controllen, flags);
	hex(buf, controllen);
	printf(" msgs=%s ranges=%s items=%s trunc=%d\n", mo ? msgs : "none",
	       ro ? ranges : "none", io ? items : "none",
	       (flags & MSG_CTRUNC) ? 1 : 0);
}

/* ---- sockets --------------------------------------------------------- */

static int loopback_up(void)
{
	struct ifreq req;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int r;

	if (fd < 0)
		return -1;
	memset(&req, 0, sizeof(req));
	strcpy(req.ifr_name, "lo");
	r = ioctl(fd, SIOCGIFFLAGS, &req);
	if (r == 0 && !(req.ifr_flags & IFF_UP)) {
		req.ifr_flags |= IFF_UP;
		r = ioctl(fd, SIOCSIFFLAGS, &req);
	}
	close(fd);
	return r;
}

union addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

static socklen_t loopback(union addr *a, int v6)
{
	memset(a, 0, sizeof(*a));
	if (v6) {
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_addr = in6addr_loopback;
		return sizeof(a->in6);
	}
	a->in.sin_family = AF_INET;
	a->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(a->in);
}

/* A socket bound to loopback port 0; -1 with errno on failure. */
static int bound(int v6, int type, union addr *a, socklen_t *alen)
{
	int fd = socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0);

	*alen = loopback(a, v6);
	if (fd < 0)
		return -1;
	if (bind(fd, &a->sa, *alen) < 0 || getsockname(fd, &a->sa, alen) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Whether this agent is PID 1 on a bare kernel (the system tier). */
static int is_init;

/* Whether this agent has set SO_ZEROCOPY yet: as PID 1, its first enable is
 * the first since boot (first_enable). */
static int zc_enabled;

/* SO_ZEROCOPY; returns 0 or the errno, printed either way. */
static int zc_enable(int fd)
{
	int one = 1;
	int r = setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one));
	int e = errno;

	call("setsockopt_SO_ZEROCOPY", r, e);
	if (r == 0)
		zc_enabled = 1;
	return r < 0 ? e : 0;
}

/* The case's end when SO_ZEROCOPY was refused with errno e. */
static void zc_refused(const char *c, int e)
{
	char d[128];

	snprintf(d, sizeof(d), "SO_ZEROCOPY: %s (errno %d)", strerror(e), e);
	end(c, e == ENOPROTOOPT ? "unsupported" : "fail", d);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * One non-blocking error-queue read into buf (cap bytes). A one-byte data
 * iovec is passed: qemu-user (7.2) returns 0 without calling the kernel
 * for a recvmsg with no iovecs.
 */
static ssize_t recv_errq(int fd, unsigned char *buf, size_t cap, size_t *controllen,
			 int *flags)
{
	struct msghdr m;
	struct iovec iov;
	char dummy[1];
	ssize_t r;

	memset(&m, 0, sizeof(m));
	iov.iov_base = dummy;
	iov.iov_len = sizeof(dummy);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = buf;
	m.msg_controllen = cap;
	memset(buf, 0, cap);
	r = recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);
	*controllen = m.msg_controllen;
	*flags = m.msg_flags;
	return r;
}

/* Waits up to ms for the error queue (POLLERR). */
static void wait_err(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = 0 };

	poll(&p, 1, ms);
}

/* Reads the error queue until sends 0..want-1 are covered or 5 s pass. */
static void drain(int fd, struct cover *cv, int want)
{
	double deadline = now() + 5;

	for (;;) {
		int i, done = 1;
		ctlbuf u;
		size_t len;
		int flags;

		for (i = 0; i < want; i++)
			done &= cv->count[i] >= 1;
		if (done || now() > deadline)
			return;
		if (recv_errq(fd, u.b, 256, &len, &flags) < 0) {
			if (errno != EAGAIN) {
				call("recvmsg_errqueue", -1, errno);
				return;
			}
			wait_err(fd, 50);
			continue;
		}
		raw("recv", u.b, len, flags, cv);
	}
}

/* ---- the SCM_ZC_NOTIFICATION placeholder ------------------------------ */

/* Writes a 16-element placeholder, poisoned; returns msg_controllen. */
static size_t placeholder(unsigned char *buf)
{
	struct msghdr m;
	struct cmsghdr *c;
	uint32_t n = ZC_MAX;

	memset(buf, 0, CMSG_SPACE(ZC_DATA));
	memset(&m, 0, sizeof(m));
	m.msg_control = buf;
	m.msg_controllen = CMSG_SPACE(ZC_DATA);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_ZC_NOTIFICATION;
	c->cmsg_len = CMSG_LEN(ZC_DATA);
	memcpy(CMSG_DATA(c), &n, 4);
	memset(CMSG_DATA(c) + 4, ZC_POISON, ZC_MAX * ZC_ELEM);
	return CMSG_SPACE(ZC_DATA);
}

/*
 * What the kernel did with a placeholder: 0 unwritten, n+1 written with n
 * completions (applied to cv), -1 corrupt.
 */
static int placeholder_outcome(unsigned char *buf, const unsigned char *sent,
			       size_t sentlen, size_t controllen, int flags,
			       struct cover *cv)
{
	struct msghdr m;
	struct cmsghdr *c;

	if (controllen == sentlen && !(flags & MSG_CTRUNC) &&
	    memcmp(buf, sent, sentlen) == 0)
		return 0;
	memset(&m, 0, sizeof(m));
	m.msg_control = buf;
	m.msg_controllen = controllen;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		uint32_t n, i;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_ZC_NOTIFICATION)
			continue;
		if (c->cmsg_len != CMSG_LEN(ZC_DATA))
			return -1;
		memcpy(&n, CMSG_DATA(c), 4);
		if (n > ZC_MAX)
			return -1;
		for (i = 0; i < n; i++) {
			const unsigned char *e = CMSG_DATA(c) + 4 + i * ZC_ELEM;
			uint32_t lo, hi;

			memcpy(&lo, e, 4);
			memcpy(&hi, e + 4, 4);
			if (e[8] > 1)
				return -1;
			if (cv)
				cover_range(cv, lo, hi, e[8] == 0);
		}
		return (int)n + 1;
	}
	return -1;
}

/* sendmsg of data with an optional control buffer. */
static ssize_t send_ctl(int fd, const void *data, size_t n, unsigned char *ctl,
			size_t *ctllen, int *flags, int msgflags)
{
	struct msghdr m;
	struct iovec iov;
	ssize_t r;

	memset(&m, 0, sizeof(m));
	iov.iov_base = (void *)data;
	iov.iov_len = n;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	if (ctl) {
		m.msg_control = ctl;
		m.msg_controllen = *ctllen;
	}
	r = sendmsg(fd, &m, msgflags);
	if (ctllen)
		*ctllen = m.msg_controllen;
	if (flags)
		*flags = m.msg_flags;
	return r;
}

/*
 * sendmsg of data with a fresh placeholder, printing it (RAW dir=send, when
 * show), the call (CALL name=sendmsg_placeholder) and, whatever the result
 * (the proposal copies the answer back even when the send fails), the
 * buffer afterwards (RAW dir=after). *o: placeholder_outcome (completions
 * applied to cv); *err: the call's errno.
 */
static ssize_t placeholder_send(int fd, const void *data, size_t n, int msgflags,
				int show, struct cover *cv, int *o, int *err)
{
	ctlbuf sent, u;
	size_t len, ctllen;
	int flags = 0;
	ssize_t r;

	len = placeholder(sent.b);
	if (show)
		raw("send", sent.b, len, 0, NULL);
	memcpy(u.b, sent.b, len);
	ctllen = len;
	r = send_ctl(fd, data, n, u.b, &ctllen, &flags, msgflags);
	*err = errno;
	call("sendmsg_placeholder", r, *err);
	/* The kernel writes back at most the len bytes it was given. */
	if (ctllen > len)
		ctllen = len;
	raw("after", u.b, ctllen, flags, NULL);
	*o = placeholder_outcome(u.b, sent.b, len, ctllen, flags, cv);
	return r;
}

/* Prints the PROBE line for a placeholder send; returns its outcome word. */
static const char *probe_line(ssize_t r, int err, int o)
{
	const char *w = o < 0 ? "corrupt" : o > 0 ? "written" :
			r < 0 && err == EINVAL ? "rejected" : "unwritten";

	if (o > 0)
		printf("PROBE outcome=%s n=%d\n", w, o - 1);
	else
		printf("PROBE outcome=%s\n", w);
	return w;
}

/* ---- cases ----------------------------------------------------------- */

static unsigned char payload[PAYLOAD];

static void native_facts(const char *c)
{
	printf("FACTS view=headers json=");
	abi_facts();
	printf("\n");
	end(c, "ok", "facts from this target's C headers");
}

/* zc_tcp4, zc_tcp6, zc_udp4, zc_udp6 */
static void zc_case(const char *c, int v6, int tcp)
{
	union addr a;
	socklen_t alen;
	int lfd, tx, rx = -1, e, i;
	struct cover cv;
	char why[128];

	memset(&cv, 0, sizeof(cv));
	lfd = bound(v6, tcp ? SOCK_STREAM : SOCK_DGRAM, &a, &alen);
	if (lfd < 0) {
		snprintf(why, sizeof(why), "no %s loopback: %s", v6 ? "IPv6" : "IPv4",
			 strerror(errno));
		end(c, "skip", why);
		return;
	}
	tx = socket(v6 ? AF_INET6 : AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (tcp && listen(lfd, 1) < 0) {
		end(c, "fail", "listen");
		return;
	}
	if (connect(tx, &a.sa, alen) < 0) {
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		end(c, "fail", why);
		return;
	}
	if (tcp)
		rx = accept(lfd, NULL, NULL);
	e = zc_enable(tx);
	if (e) {
		zc_refused(c, e);
		goto out;
	}
	for (i = 0; i < SENDS; i++) {
		ssize_t r = send(tx, payload, PAYLOAD, MSG_ZEROCOPY);

		if (r != PAYLOAD) {
			call("send_MSG_ZEROCOPY", r < 0 ? -1 : r, errno);
			snprintf(why, sizeof(why), "send %d: %s", i,
				 r < 0 ? strerror(errno) : "short");
			end(c, "fail", why);
			goto out;
		}
	}
	drain(tx, &cv, SENDS);
	if (cover_exact(&cv, why, sizeof(why)))
		end(c, "ok", why);
	else
		end(c, "fail", why);
out:
	close(tx);
	close(lfd);
	if (rx >= 0)
		close(rx);
}

/* A connected UDP pair on IPv4 loopback; 0 on success. */
static int udp_pair(int *tx, int *rx)
{
	union addr a;
	socklen_t alen;

	*rx = bound(0, SOCK_DGRAM, &a, &alen);
	if (*rx < 0)
		return -1;
	*tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (*tx < 0 || connect(*tx, &a.sa, alen) < 0)
		return -1;
	return 0;
}

/* A connected UDP pair with SO_ZEROCOPY on tx, for case c; on failure
 * the case is ended, whatever was opened is closed, and -1 returned.
 */
static int zc_udp_pair(const char *c, int *tx, int *rx)
{
	int e;

	*tx = -1;
	*rx = -1;
	if (udp_pair(tx, rx) < 0) {
		end(c, "fail", "udp pair");
	} else {
		e = zc_enable(*tx);
		if (!e)
			return 0;
		zc_refused(c, e);
	}
	if (*tx >= 0)
		close(*tx);
	if (*rx >= 0)
		close(*rx);
	return -1;
}

/*
 * The SCM_ZC_NOTIFICATION probe: a placeholder on a socket with SO_ZEROCOPY
 * (the proposal refuses it otherwise), sent without MSG_ZEROCOPY. A kernel
 * with the proposal writes zero completions; one without refuses it
 * (EINVAL) or leaves it unwritten. The error queue must stay empty.
 */
static void probe(const char *c)
{
	ctlbuf u;
	size_t ctllen;
	int tx, rx, flags = 0, o, err;
	ssize_t r, q;

	if (zc_udp_pair(c, &tx, &rx) < 0)
		return;
	r = placeholder_send(tx, payload, 100, 0, 1, NULL, &o, &err);
	probe_line(r, err, o);
	/* Nothing was sent with MSG_ZEROCOPY: the error queue must be empty. */
	wait_err(tx, 100);
	q = recv_errq(tx, u.b, 256, &ctllen, &flags);
	call("recvmsg_errqueue", q, errno);
	if (q >= 0) {
		raw("recv", u.b, ctllen, flags, NULL);
		end(c, "fail", "an error-queue item after a probe without MSG_ZEROCOPY");
	} else if (errno != EAGAIN) {
		end(c, "fail", "error-queue read failed");
	} else if (o == -1) {
		end(c, "fail", "placeholder came back corrupt");
	} else if (o > 1) {
		end(c, "fail", "bogus completions written into the placeholder");
	} else if (r < 0 && !(o == 0 && err == EINVAL)) {
		end(c, "fail", "sendmsg failed");
	} else {
		end(c, "ok", o == 0 && r < 0 ? "unsupported: placeholder rejected with EINVAL" :
		    o == 0 ? "unsupported: placeholder left unwritten" :
		    "supported: zero completions written");
	}
	close(tx);
	close(rx);
}

/*
 * Both mechanisms: placeholder sends with MSG_ZEROCOPY (each after the first
 * once the previous completion is queued), then the error queue.
 */
static void hybrid(const char *c)
{
	int tx, rx, i, mode = 0;	/* 0 unprobed, 1 inline, 2 rejected, 3 unwritten */
	struct cover cv;
	char why[128];
	static const char *const modes[] = { "Unprobed", "Inline",
		"ErrorQueue(Rejected)", "ErrorQueue(Unwritten)", "ErrorQueue(Corrupt)" };

	memset(&cv, 0, sizeof(cv));
	if (zc_udp_pair(c, &tx, &rx) < 0)
		return;
	for (i = 0; i < SENDS; i++) {
		ctlbuf sent, u;
		size_t len, ctllen;
		int flags = 0, o;
		ssize_t r;

		/* The previous completion queued: one to return inline. */
		if (i > 0)
			wait_err(tx, 1000);
		if (mode >= 2) {
			r = send(tx, payload, PAYLOAD, MSG_ZEROCOPY);
		} else {
			len = placeholder(sent.b);
			if (mode == 0)
				raw("send", sent.b, len, 0, NULL);
			memcpy(u.b, sent.b, len);
			ctllen = len;
			r = send_ctl(tx, payload, PAYLOAD, u.b, &ctllen, &flags, MSG_ZEROCOPY);
			if (r < 0 && errno == EINVAL && mode == 0) {
				call("sendmsg_placeholder", r, errno);
				mode = 2;
				r = send(tx, payload, PAYLOAD, MSG_ZEROCOPY);
			} else if (r >= 0) {
				raw("after", u.b, ctllen, flags, NULL);
				o = placeholder_outcome(u.b, sent.b, len, ctllen, flags, &cv);
				mode = o == 0 ? 3 : o > 0 ? 1 : 4;
			}
		}
		if (r != PAYLOAD) {
			call("send_MSG_ZEROCOPY", r < 0 ? -1 : r, errno);
			snprintf(why, sizeof(why), "send %d: %s", i, strerror(errno));
			end(c, "fail", why);
			goto out;
		}
	}
	printf("MODE %s\n", modes[mode]);
	drain(tx, &cv, SENDS);
	if (mode == 4)
		end(c, "fail", "placeholder came back corrupt");
	else if (cover_exact(&cv, why, sizeof(why)))
		end(c, "ok", why);
	else
		end(c, "fail", why);
out:
	close(tx);
	close(rx);
}

/*
 * inline_tcp4, inline_tcp6, inline_udp4, inline_udp6: SENDS MSG_ZEROCOPY
 * sends on an SO_ZEROCOPY socket, each with a fresh placeholder, each after
 * the first once the previous completion is queued (POLLERR, up to 1 s): a
 * kernel with the proposal returns earlier completions inline and the last
 * one on the error queue, drained at the end. After an EINVAL on the first
 * placeholder (no proposal) the sends go on without one.
 */
static void inline_case(const char *c, int v6, int tcp)
{
	union addr a;
	socklen_t alen;
	int lfd, tx, rx = -1, e, i, o, err, with = 1;
	long inl = 0;
	pid_t reader = -1;
	struct cover cv;
	char why[160];

	memset(&cv, 0, sizeof(cv));
	lfd = bound(v6, tcp ? SOCK_STREAM : SOCK_DGRAM, &a, &alen);
	if (lfd < 0) {
		snprintf(why, sizeof(why), "no %s loopback: %s", v6 ? "IPv6" : "IPv4",
			 strerror(errno));
		end(c, "skip", why);
		return;
	}
	tx = socket(v6 ? AF_INET6 : AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (tcp && listen(lfd, 1) < 0) {
		end(c, "fail", "listen");
		goto out;
	}
	if (connect(tx, &a.sa, alen) < 0) {
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		end(c, "fail", why);
		goto out;
	}
	if (tcp) {
		rx = accept(lfd, NULL, NULL);
		/* A child drains the receiving end until the sender closes. */
		fflush(stdout);
		reader = fork();
		if (reader == 0) {
			char b[4096];

			close(tx);
			while (read(rx, b, sizeof(b)) > 0)
				;
			_exit(0);
		}
	}
	e = zc_enable(tx);
	if (e) {
		zc_refused(c, e);
		goto out;
	}
	for (i = 0; i < SENDS; i++) {
		ssize_t r = -1;

		if (i > 0)
			wait_err(tx, 1000);
		if (with) {
			long before = cv.ids;

			r = placeholder_send(tx, payload, PAYLOAD, MSG_ZEROCOPY, i == 0, &cv,
					     &o, &err);
			if (i == 0)
				probe_line(r, err, o);
			if (o < 0) {
				snprintf(why, sizeof(why), "placeholder %d came back corrupt", i);
				end(c, "fail", why);
				goto out;
			}
			inl += cv.ids - before;
			/* No SCM_ZC_NOTIFICATION: the rest go without it. */
			if (i == 0 && o == 0 && r < 0 && err == EINVAL)
				with = 0;
		}
		if (!with) {
			r = send(tx, payload, PAYLOAD, MSG_ZEROCOPY);
			err = errno;
			call("send_MSG_ZEROCOPY", r, err);
		}
		if (r != PAYLOAD) {
			snprintf(why, sizeof(why), "send %d: returned %ld, %s", i, (long)r,
				 strerror(err));
			end(c, "fail", why);
			goto out;
		}
	}
	printf("INLINE n=%ld\n", inl);
	drain(tx, &cv, SENDS);
	if (cover_exact(&cv, why, sizeof(why)))
		end(c, "ok", why);
	else
		end(c, "fail", why);
out:
	close(tx);
	if (reader > 0)
		waitpid(reader, NULL, 0);
	close(lfd);
	if (rx >= 0)
		close(rx);
}

/*
 * A SCM_ZC_NOTIFICATION message claiming capacity cap with elems poisoned
 * elements (shapes placeholder() never builds); returns msg_controllen.
 */
static size_t bad_placeholder_buf(unsigned char *buf, uint32_t cap, size_t elems)
{
	struct msghdr m;
	struct cmsghdr *h;
	size_t dlen = 4 + elems * ZC_ELEM;

	memset(buf, 0, CMSG_SPACE(dlen));
	memset(&m, 0, sizeof(m));
	m.msg_control = buf;
	m.msg_controllen = CMSG_SPACE(dlen);
	h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_ZC_NOTIFICATION;
	h->cmsg_len = CMSG_LEN(dlen);
	memcpy(CMSG_DATA(h), &cap, 4);
	memset(CMSG_DATA(h) + 4, ZC_POISON, elems * ZC_ELEM);
	return CMSG_SPACE(dlen);
}

/*
 * bad_placeholder: with one completion queued on an SO_ZEROCOPY socket,
 * placeholders the proposal refuses with EINVAL (capacity 0, capacity
 * ZC_MAX + 1, a length that does not match the capacity, and a good one on
 * a second socket without SO_ZEROCOPY), sent without MSG_ZEROCOPY; the
 * completion must still be on the error queue afterwards.
 */
static void bad_placeholder(const char *c)
{
	static const struct {
		const char *name;
		uint32_t cap;
		size_t elems;
	} bad[] = {
		{ "sendmsg_cap0", 0, 0 },
		{ "sendmsg_cap17", ZC_MAX + 1, ZC_MAX + 1 },
		{ "sendmsg_len_mismatch", 2, 3 },
	};
	int tx, rx, tx2 = -1, rx2 = -1, e, i, wrong = 0;
	struct cover cv;
	ctlbuf u;
	size_t len, wo = 0;
	ssize_t r;
	char why[512] = "";

	memset(&cv, 0, sizeof(cv));
	if (zc_udp_pair(c, &tx, &rx) < 0)
		return;
	r = send(tx, payload, PAYLOAD, MSG_ZEROCOPY);
	call("send_MSG_ZEROCOPY", r, errno);
	if (r != PAYLOAD) {
		end(c, "fail", "the zerocopy send");
		goto out;
	}
	wait_err(tx, 1000);
	for (i = 0; i < 4; i++) {
		const char *name = i < 3 ? bad[i].name : "sendmsg_no_so_zerocopy";
		int fd = tx;

		if (i < 3) {
			len = bad_placeholder_buf(u.b, bad[i].cap, bad[i].elems);
		} else {
			if (udp_pair(&tx2, &rx2) < 0) {
				end(c, "fail", "second udp pair");
				goto out;
			}
			fd = tx2;
			len = placeholder(u.b);
		}
		raw("send", u.b, len, 0, NULL);
		r = send_ctl(fd, payload, 100, u.b, &len, NULL, 0);
		e = errno;
		call(name, r, e);
		if ((r >= 0 || e != EINVAL) && wo < sizeof(why)) {
			wrong++;
			wo += snprintf(why + wo, sizeof(why) - wo, "%s: returned %ld errno %d, want EINVAL; ",
				       name, (long)r, r < 0 ? e : 0);
		}
	}
	/* The one completion must still be queued: nothing refused took it. */
	drain(tx, &cv, 1);
	if (cv.count[0] != 1 || cv.ids != 1 || cv.uncopied) {
		wrong++;
		if (wo < sizeof(why))
			snprintf(why + wo, sizeof(why) - wo,
				 "the queued completion: %ld ids, send 0 seen %d times", cv.ids,
				 cv.count[0]);
	}
	if (wrong)
		end(c, "fail", why);
	else
		end(c, "ok", "every bad placeholder refused with EINVAL, the completion left queued");
out:
	close(tx);
	close(rx);
	if (tx2 >= 0)
		close(tx2);
	if (rx2 >= 0)
		close(rx2);
}

/* ---- copy-back cases (conformance/agent/src/guest/copyback.rs) ------ */

#define QUEUED_SENDS 3		/* cases::QUEUED_SENDS */
#define BAD_CMSG_TYPE 0x7fff	/* cases::BAD_CMSG_TYPE */
#define MIXED_SENDS 4		/* cases::MIXED_SENDS */
#define MIXED_TTL 7		/* cases::MIXED_TTL */
#define MMSG_ENTRIES 3		/* cases::MMSG_ENTRIES */
#define MMSG_ROUNDS 2		/* cases::MMSG_ROUNDS */

/* Appends to a reason: "...; " each. */
static void why_add(char *why, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void why_add(char *why, size_t n, const char *fmt, ...)
{
	size_t o = strlen(why);
	va_list ap;

	if (o + 1 >= n)
		return;
	va_start(ap, fmt);
	vsnprintf(why + o, n - o, fmt, ap);
	va_end(ap);
	o = strlen(why);
	if (o + 2 < n)
		strcpy(why + o, "; ");
}

/* Sends 0..n-1 (and nothing else) covered exactly once, copied. */
static int cover_first(const struct cover *cv, int n, char *why, size_t wn)
{
	int i;

	if (cv->bogus || cv->uncopied) {
		why_add(why, wn, "%d ids never sent, %d ranges without the copied bit",
			cv->bogus, cv->uncopied);
		return 0;
	}
	for (i = 0; i < SENDS; i++) {
		if (cv->count[i] != (i < n)) {
			why_add(why, wn, "send %d completed %d times", i, cv->count[i]);
			return 0;
		}
	}
	return 1;
}

/* n zerocopy sends of PAYLOAD bytes, printed; then waits for completions. */
static int queue_completions(int fd, int n, char *why, size_t wn)
{
	int i;

	for (i = 0; i < n; i++) {
		ssize_t r = send(fd, payload, PAYLOAD, MSG_ZEROCOPY);

		call("send_MSG_ZEROCOPY", r, errno);
		if (r != PAYLOAD) {
			why_add(why, wn, "zerocopy send %d returned %ld", i, (long)r);
			return -1;
		}
	}
	wait_err(fd, 1000);
	usleep(50000);
	return 0;
}

/* Reads the error queue until it is empty (nothing within 200 ms). */
static void drain_empty(int fd, struct cover *cv, char *why, size_t wn)
{
	int i;

	for (i = 0; i < 64; i++) {
		ctlbuf u;
		size_t len;
		int flags;

		wait_err(fd, 200);
		if (recv_errq(fd, u.b, 256, &len, &flags) < 0) {
			int e = errno;

			call("recvmsg_errqueue", -1, e);
			if (e != EAGAIN)
				why_add(why, wn, "error-queue read: errno %d", e);
			return;
		}
		raw("recv", u.b, len, flags, cv);
	}
}

static void verdict(const char *c, const char *why, const char *ok)
{
	if (why[0])
		end(c, "fail", why);
	else
		end(c, "ok", ok);
}

/* The placeholder at h set to its capacity and poisoned again. */
static void rearm(struct cmsghdr *h)
{
	uint32_t n = ZC_MAX;

	memcpy(CMSG_DATA(h), &n, 4);
	memset(CMSG_DATA(h) + 4, ZC_POISON, ZC_MAX * ZC_ELEM);
}

/*
 * failed_send: with QUEUED_SENDS completions queued on an SO_ZEROCOPY
 * socket, one sendmsg (no MSG_ZEROCOPY) whose control buffer is a fresh
 * poisoned placeholder followed by an unknown SOL_SOCKET message, so the
 * send fails with EINVAL after the placeholder was processed. A kernel with
 * the proposal hands the completions back in the placeholder anyway; one
 * without refuses it and leaves them queued. Either way every id must turn
 * up exactly once, in the buffer or on the error queue (read until empty).
 */
static void failed_send(const char *c)
{
	ctlbuf sent, u;
	struct msghdr m;
	struct cmsghdr *h;
	struct cover cv;
	size_t len, total, ctllen;
	int tx, rx, o, flags = 0, err;
	ssize_t r;
	char why[512] = "";

	memset(&cv, 0, sizeof(cv));
	if (zc_udp_pair(c, &tx, &rx) < 0)
		return;
	if (queue_completions(tx, QUEUED_SENDS, why, sizeof(why)) < 0) {
		end(c, "fail", why);
		goto out;
	}
	memset(sent.b, 0, sizeof(sent.b));
	len = placeholder(sent.b);
	total = len + CMSG_SPACE(4);
	memset(&m, 0, sizeof(m));
	m.msg_control = sent.b;
	m.msg_controllen = total;
	h = CMSG_NXTHDR(&m, CMSG_FIRSTHDR(&m));
	if (!h || (unsigned char *)h != sent.b + len) {
		end(c, "fail", "CMSG_NXTHDR found no room after the placeholder");
		goto out;
	}
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = BAD_CMSG_TYPE;
	h->cmsg_len = CMSG_LEN(4);
	memset(CMSG_DATA(h), 0, 4);
	raw("send", sent.b, total, 0, NULL);
	memcpy(u.b, sent.b, total);
	ctllen = total;
	r = send_ctl(tx, payload, 100, u.b, &ctllen, &flags, 0);
	err = errno;
	call("sendmsg_invalid_cmsg", r, err);
	raw("after", u.b, ctllen < total ? ctllen : total, flags, NULL);
	o = placeholder_outcome(u.b, sent.b, total, ctllen, flags, &cv);
	if (o < 0) {
		end(c, "fail", "placeholder came back corrupt");
		goto out;
	}
	if (r >= 0 || err != EINVAL)
		why_add(why, sizeof(why), "sendmsg returned %ld errno %d, want EINVAL",
			(long)r, r < 0 ? err : 0);
	drain_empty(tx, &cv, why, sizeof(why));
	cover_first(&cv, QUEUED_SENDS, why, sizeof(why));
	verdict(c, why, o > 0 ? "EINVAL; the completions came back in the placeholder" :
		"EINVAL; placeholder unwritten, the completions stayed queued");
out:
	close(tx);
	close(rx);
}

/*
 * readonly_control: with QUEUED_SENDS completions queued, one sendmsg of
 * 100 bytes (no MSG_ZEROCOPY) whose placeholder lies in a page made
 * read-only, so the kernel cannot write its answer. The send must still
 * return its byte count, and every completion must then be on the error
 * queue (a kernel without the proposal refuses the placeholder with EINVAL,
 * leaving them there too).
 */
static void readonly_control(const char *c)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *page;
	ctlbuf sent;
	struct cover cv;
	size_t len, ctllen;
	int tx, rx, o, flags = 0, err;
	ssize_t r;
	char why[512] = "";

	memset(&cv, 0, sizeof(cv));
	if (zc_udp_pair(c, &tx, &rx) < 0)
		return;
	if (queue_completions(tx, QUEUED_SENDS, why, sizeof(why)) < 0) {
		end(c, "fail", why);
		goto out;
	}
	page = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED) {
		end(c, "fail", "mmap");
		goto out;
	}
	len = placeholder(page);
	memcpy(sent.b, page, len);
	raw("send", page, len, 0, NULL);
	r = mprotect(page, pg, PROT_READ);
	call("mprotect_readonly", r, errno);
	if (r < 0) {
		end(c, "fail", "mprotect");
		munmap(page, pg);
		goto out;
	}
	ctllen = len;
	r = send_ctl(tx, payload, 100, page, &ctllen, &flags, 0);
	err = errno;
	call("sendmsg_readonly", r, err);
	raw("after", page, ctllen < len ? ctllen : len, flags, NULL);
	o = placeholder_outcome(page, sent.b, len, ctllen, flags, NULL);
	if (o != 0)
		why_add(why, sizeof(why), "a read-only placeholder came back %s",
			o < 0 ? "corrupt" : "written");
	if (r != 100 && !(r < 0 && err == EINVAL))
		why_add(why, sizeof(why),
			"sendmsg returned %ld errno %d; want 100 (or EINVAL without the proposal)",
			(long)r, r < 0 ? err : 0);
	drain_empty(tx, &cv, why, sizeof(why));
	cover_first(&cv, QUEUED_SENDS, why, sizeof(why));
	verdict(c, why, r < 0 ? "refused; all completions left on the error queue" :
		"sent; all completions left on the error queue");
	munmap(page, pg);
out:
	close(tx);
	close(rx);
}

/* The IP_TTL of one datagram received on rx (printed), or -1. */
static int recv_ttl(int rx)
{
	ctlbuf u;
	struct msghdr m;
	struct cmsghdr *h;
	struct iovec iov;
	char data[PAYLOAD];
	int ttl = -1;
	ssize_t r;

	memset(&m, 0, sizeof(m));
	memset(u.b, 0, sizeof(u.b));
	iov.iov_base = data;
	iov.iov_len = sizeof(data);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.b;
	m.msg_controllen = 64;
	r = recvmsg(rx, &m, 0);
	call("recvmsg_IP_TTL", r, errno);
	if (r < 0)
		return -1;
	raw("recv", u.b, m.msg_controllen, m.msg_flags, NULL);
	for (h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
		if (h->cmsg_level == SOL_IP && h->cmsg_type == IP_TTL &&
		    h->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&ttl, CMSG_DATA(h), sizeof(int));
	return ttl;
}

/* The messages a walk of m finds. */
static int count_msgs(struct msghdr *m)
{
	struct cmsghdr *h;
	int n = 0;

	for (h = CMSG_FIRSTHDR(m); h; h = CMSG_NXTHDR(m, h))
		n++;
	return n;
}

/*
 * A msghdr over PAYLOAD bytes and buf holding IP_TTL (MIXED_TTL), then a
 * placeholder; returns the placeholder.
 */
static struct cmsghdr *mixed_msghdr(struct msghdr *m, struct iovec *iov, unsigned char *buf)
{
	struct cmsghdr *h, *ph;
	int ttl = MIXED_TTL;

	memset(buf, 0, CMSG_SPACE(sizeof(int)) + CMSG_SPACE(ZC_DATA));
	memset(m, 0, sizeof(*m));
	m->msg_control = buf;
	m->msg_controllen = CMSG_SPACE(sizeof(int)) + CMSG_SPACE(ZC_DATA);
	h = CMSG_FIRSTHDR(m);
	h->cmsg_level = SOL_IP;
	h->cmsg_type = IP_TTL;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &ttl, sizeof(int));
	ph = CMSG_NXTHDR(m, h);
	ph->cmsg_level = SOL_SOCKET;
	ph->cmsg_type = SCM_ZC_NOTIFICATION;
	ph->cmsg_len = CMSG_LEN(ZC_DATA);
	rearm(ph);
	iov->iov_base = payload;
	iov->iov_len = PAYLOAD;
	m->msg_iov = iov;
	m->msg_iovlen = 1;
	return ph;
}

/*
 * mixed_cmsgs: one buffer holding IP_TTL (MIXED_TTL) and then a
 * placeholder, and one msghdr over it, reused for MIXED_SENDS zerocopy UDP
 * sends; between sends only the placeholder is re-armed. After each send
 * the buffer, walked with the msg_controllen the kernel left, must still
 * hold both messages, and the receiver (IP_RECVTTL) must see the TTL on
 * every datagram. A kernel without the proposal refuses the first send
 * with EINVAL.
 */
static void mixed_cmsgs(const char *c)
{
	ctlbuf u, sent;
	struct msghdr m;
	struct cmsghdr *ph;
	struct iovec iov;
	struct cover cv;
	size_t len;
	int tx, rx, e, i, o, one = 1, ttl, nsent = 0;
	ssize_t r;
	char why[512] = "";

	memset(&cv, 0, sizeof(cv));
	if (zc_udp_pair(c, &tx, &rx) < 0)
		return;
	if (setsockopt(rx, SOL_IP, IP_RECVTTL, &one, sizeof(one)) < 0) {
		end(c, "fail", "IP_RECVTTL");
		goto out;
	}
	ph = mixed_msghdr(&m, &iov, u.b);
	len = m.msg_controllen;
	memcpy(sent.b, u.b, len);
	raw("send", u.b, len, 0, NULL);
	for (i = 0; i < MIXED_SENDS; i++) {
		size_t left;

		if (i > 0) {
			wait_err(tx, 1000);
			rearm(ph);
		}
		r = sendmsg(tx, &m, MSG_ZEROCOPY);
		e = errno;
		call("sendmsg_mixed", r, e);
		left = m.msg_controllen < len ? m.msg_controllen : len;
		raw("after", u.b, left, m.msg_flags, NULL);
		if (m.msg_controllen != len || m.msg_flags || count_msgs(&m) != 2)
			why_add(why, sizeof(why),
				"send %d: msg_controllen %zu of %zu, msg_flags %#x, %d messages",
				i, (size_t)m.msg_controllen, len, (unsigned)m.msg_flags,
				count_msgs(&m));
		o = placeholder_outcome(u.b, sent.b, len, m.msg_controllen, m.msg_flags, &cv);
		if (o < 0) {
			why_add(why, sizeof(why), "send %d: placeholder came back corrupt", i);
			break;
		}
		/* No SCM_ZC_NOTIFICATION: refused, nothing sent. */
		if (r < 0 && i == 0 && e == EINVAL && o == 0)
			break;
		if (r != PAYLOAD) {
			why_add(why, sizeof(why), "send %d: returned %ld errno %d", i, (long)r,
				r < 0 ? e : 0);
			break;
		}
		nsent++;
		ttl = recv_ttl(rx);
		printf("VALUE name=ttl v=%d\n", ttl);
		if (ttl != MIXED_TTL)
			why_add(why, sizeof(why), "datagram %d arrived with TTL %d", i, ttl);
	}
	if (nsent) {
		drain(tx, &cv, MIXED_SENDS);
		cover_first(&cv, MIXED_SENDS, why, sizeof(why));
	}
	verdict(c, why, nsent ? "every send with its TTL, both messages kept" :
		"placeholder refused");
out:
	close(tx);
	close(rx);
}

/*
 * Prints and checks each entry of a sendmmsg call: msg_len, msg_flags (must
 * still be MSG_EOR) and the buffer after it. Returns how many placeholders
 * came back written.
 */
static int mmsg_entries(struct mmsghdr *mm, ctlbuf *ctl, const unsigned char *sent, size_t len,
			int round, struct cover *cv, char *why, size_t wn)
{
	int k, written = 0;

	for (k = 0; k < MMSG_ENTRIES; k++) {
		struct msghdr *h = &mm[k].msg_hdr;
		size_t left = h->msg_controllen < len ? h->msg_controllen : len;
		int o;

		printf("VALUE name=msg_len v=%u\n", mm[k].msg_len);
		printf("VALUE name=msg_flags v=%d\n", h->msg_flags);
		raw("after", ctl[k].b, left, h->msg_flags, NULL);
		if (h->msg_flags != MSG_EOR)
			why_add(why, wn, "call %d entry %d: msg_flags %#x, want MSG_EOR", round, k,
				(unsigned)h->msg_flags);
		o = placeholder_outcome(ctl[k].b, sent, len, h->msg_controllen,
					h->msg_flags & MSG_CTRUNC, cv);
		if (o < 0)
			why_add(why, wn, "call %d entry %d: placeholder corrupt", round, k);
		written += o > 0;
	}
	return written;
}

/*
 * sendmmsg_eor: MMSG_ROUNDS sendmmsg calls (MSG_ZEROCOPY) of the same array
 * of MMSG_ENTRIES UDP messages to one address, each with MSG_EOR in its
 * msg_flags and a placeholder of its own; between calls only the
 * placeholders are re-armed. Each entry's msg_flags must still be MSG_EOR
 * afterwards. A kernel without the proposal refuses the first entry with
 * EINVAL.
 */
static void sendmmsg_eor(const char *c)
{
	struct mmsghdr mm[MMSG_ENTRIES];
	struct iovec iov[MMSG_ENTRIES];
	ctlbuf ctl[MMSG_ENTRIES], sent;
	union addr a;
	socklen_t alen;
	struct cover cv;
	size_t len = 0;
	int tx, rx, e, k, round, nsent = 0;
	char why[512] = "";

	memset(&cv, 0, sizeof(cv));
	memset(mm, 0, sizeof(mm));
	rx = bound(0, SOCK_DGRAM, &a, &alen);
	tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (rx < 0 || tx < 0) {
		end(c, "fail", "udp sockets");
		return;
	}
	e = zc_enable(tx);
	if (e) {
		zc_refused(c, e);
		goto out;
	}
	for (k = 0; k < MMSG_ENTRIES; k++) {
		len = placeholder(ctl[k].b);
		raw("send", ctl[k].b, len, 0, NULL);
		iov[k].iov_base = payload;
		iov[k].iov_len = PAYLOAD;
		mm[k].msg_hdr.msg_name = &a.sa;
		mm[k].msg_hdr.msg_namelen = alen;
		mm[k].msg_hdr.msg_iov = &iov[k];
		mm[k].msg_hdr.msg_iovlen = 1;
		mm[k].msg_hdr.msg_control = ctl[k].b;
		mm[k].msg_hdr.msg_controllen = len;
		mm[k].msg_hdr.msg_flags = MSG_EOR;
	}
	memcpy(sent.b, ctl[0].b, len);
	for (round = 0; round < MMSG_ROUNDS; round++) {
		int r;

		if (round > 0) {
			wait_err(tx, 1000);
			for (k = 0; k < MMSG_ENTRIES; k++)
				rearm((struct cmsghdr *)ctl[k].b);
		}
		r = sendmmsg(tx, mm, MMSG_ENTRIES, MSG_ZEROCOPY);
		e = errno;
		call("sendmmsg", r, e);
		/* No SCM_ZC_NOTIFICATION: the first entry refused. */
		if (mmsg_entries(mm, ctl, sent.b, len, round, &cv, why, sizeof(why)) == 0 &&
		    r < 0 && round == 0 && e == EINVAL)
			break;
		if (r != MMSG_ENTRIES) {
			why_add(why, sizeof(why), "call %d: sendmmsg returned %d errno %d", round,
				r, r < 0 ? e : 0);
			break;
		}
		nsent += MMSG_ENTRIES;
	}
	if (nsent) {
		drain(tx, &cv, MMSG_ENTRIES * MMSG_ROUNDS);
		cover_first(&cv, MMSG_ENTRIES * MMSG_ROUNDS, why, sizeof(why));
	}
	verdict(c, why, nsent ? "every message sent, MSG_EOR kept" :
		"placeholder refused, MSG_EOR kept");
out:
	close(tx);
	close(rx);
}

/* ---- UDP batches: sendmmsg and GSO with MSG_ZEROCOPY ------------------ */

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define ZC_BATCH 4		/* cases::ZC_BATCH */
#define GSO_SEGMENT 300		/* cases::GSO_SEGMENT */
#define GSO_SEED 9		/* cases::GSO_SEED */

/* cases::pattern_byte and cases::batch_len. */
static unsigned char pattern_byte(size_t seed, size_t j)
{
	return (unsigned char)(seed * 67 + j * 13 + 1);
}

static size_t batch_len(int i)
{
	return 100 + 20 * (size_t)i;
}

/*
 * Receives up to max datagrams on fd (each within 500 ms), then one more
 * without waiting, which must not be there; prints each as DATA. Returns
 * how many arrived.
 */
static int receive(int fd, const char *name, int max)
{
	static unsigned char buf[4096];
	int i, got = 0;

	for (i = 0; i <= max; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (i < max)
			poll(&p, 1, 500);
		r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0)
			break;
		printf("DATA sock=%s len=%zd hex=", name, r);
		hex(buf, (size_t)r);
		printf("\n");
		got++;
	}
	return got;
}

/*
 * The entries of one sendmmsg of sendmmsg_zc: datagrams lo..lo+ZC_BATCH-1,
 * datagram i to receiver i % 2, without control buffers.
 */
static void batch_entries(struct mmsghdr *mm, struct iovec *iov,
			  unsigned char (*data)[256], int lo, union addr *a, socklen_t *alen)
{
	int k;

	memset(mm, 0, ZC_BATCH * sizeof(*mm));
	for (k = 0; k < ZC_BATCH; k++) {
		int i = lo + k;

		iov[k].iov_base = data[i];
		iov[k].iov_len = batch_len(i);
		mm[k].msg_hdr.msg_name = &a[i % 2].sa;
		mm[k].msg_hdr.msg_namelen = alen[i % 2];
		mm[k].msg_hdr.msg_iov = &iov[k];
		mm[k].msg_hdr.msg_iovlen = 1;
	}
}

static void print_msg_lens(const struct mmsghdr *mm)
{
	int k;

	for (k = 0; k < ZC_BATCH; k++)
		printf("VALUE name=msg_len v=%u\n", mm[k].msg_len);
}

/*
 * The second sendmmsg of sendmmsg_zc: a placeholder in every entry, each
 * printed before and after; sent again without them if the kernel refuses
 * the first with EINVAL. Prints the call that counts as sendmmsg_notify
 * and the MODE the library would take; returns its result.
 */
static int batch_notify(int tx, struct mmsghdr *mm, struct cover *cv, char *why, size_t wn)
{
	ctlbuf ctl[ZC_BATCH], sent;
	size_t len = 0;
	int k, r, e, o, first = 0, written = 0;

	for (k = 0; k < ZC_BATCH; k++) {
		len = placeholder(ctl[k].b);
		raw("send", ctl[k].b, len, 0, NULL);
		mm[k].msg_hdr.msg_control = ctl[k].b;
		mm[k].msg_hdr.msg_controllen = len;
	}
	memcpy(sent.b, ctl[0].b, len);
	r = sendmmsg(tx, mm, ZC_BATCH, MSG_ZEROCOPY);
	e = errno;
	call("sendmmsg_placeholders", r, e);
	for (k = 0; k < ZC_BATCH; k++) {
		struct msghdr *h = &mm[k].msg_hdr;
		size_t left = h->msg_controllen < len ? h->msg_controllen : len;

		raw("after", ctl[k].b, left, h->msg_flags, NULL);
		o = placeholder_outcome(ctl[k].b, sent.b, len, h->msg_controllen,
					h->msg_flags & MSG_CTRUNC, cv);
		if (o < 0)
			why_add(why, wn, "entry %d: placeholder corrupt", k);
		if (k == 0)
			first = o;
		written += o > 0;
	}
	if (r < 0 && e == EINVAL && first == 0) {
		for (k = 0; k < ZC_BATCH; k++) {
			mm[k].msg_hdr.msg_control = NULL;
			mm[k].msg_hdr.msg_controllen = 0;
		}
		r = sendmmsg(tx, mm, ZC_BATCH, MSG_ZEROCOPY);
		e = errno;
		printf("MODE ErrorQueue(Rejected)\n");
	} else {
		printf("MODE %s\n", written ? "Inline" : "ErrorQueue(Unwritten)");
	}
	call("sendmmsg_notify", r, e);
	print_msg_lens(mm);
	return r;
}

/*
 * sendmmsg_zc: on an unconnected SO_ZEROCOPY socket, one sendmmsg of
 * ZC_BATCH datagrams with MSG_ZEROCOPY, each to its own destination
 * (alternating between two receivers), its completions left queued; then a
 * second with a placeholder in every entry (again without them if the
 * kernel refuses the first). Every id of 0..2*ZC_BATCH-1 must complete
 * once, inline or on the error queue; every datagram is printed as
 * received for the host to check.
 */
static void sendmmsg_zc(const char *c)
{
	static unsigned char data[2 * ZC_BATCH][256];
	struct mmsghdr mm[ZC_BATCH];
	struct iovec iov[ZC_BATCH];
	union addr a[2];
	socklen_t alen[2];
	struct cover cv;
	int tx, rx[2], e, r, i, got[2];
	size_t j;
	char why[512] = "";

	memset(&cv, 0, sizeof(cv));
	for (i = 0; i < 2 * ZC_BATCH; i++)
		for (j = 0; j < batch_len(i); j++)
			data[i][j] = pattern_byte(i, j);
	rx[0] = bound(0, SOCK_DGRAM, &a[0], &alen[0]);
	rx[1] = bound(0, SOCK_DGRAM, &a[1], &alen[1]);
	tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (rx[0] < 0 || rx[1] < 0 || tx < 0) {
		end(c, "fail", "udp sockets");
		goto out;
	}
	e = zc_enable(tx);
	if (e) {
		zc_refused(c, e);
		goto out;
	}
	batch_entries(mm, iov, data, 0, a, alen);
	r = sendmmsg(tx, mm, ZC_BATCH, MSG_ZEROCOPY);
	call("sendmmsg", r, errno);
	print_msg_lens(mm);
	if (r != ZC_BATCH) {
		end(c, "fail", "the first sendmmsg sent short");
		goto out;
	}
	/* Queued before the second call, whose placeholders can take them. */
	wait_err(tx, 1000);
	usleep(50000);
	batch_entries(mm, iov, data, ZC_BATCH, a, alen);
	r = batch_notify(tx, mm, &cv, why, sizeof(why));
	if (r != ZC_BATCH)
		why_add(why, sizeof(why), "the second sendmmsg returned %d", r);
	drain(tx, &cv, 2 * ZC_BATCH);
	cover_first(&cv, 2 * ZC_BATCH, why, sizeof(why));
	got[0] = receive(rx[0], "a", ZC_BATCH);
	got[1] = receive(rx[1], "b", ZC_BATCH);
	if (got[0] != ZC_BATCH || got[1] != ZC_BATCH)
		why_add(why, sizeof(why), "received %d and %d datagrams", got[0], got[1]);
	verdict(c, why, "every datagram sent, every id once");
out:
	if (tx >= 0)
		close(tx);
	for (i = 0; i < 2; i++)
		if (rx[i] >= 0)
			close(rx[i]);
}

/*
 * gso_zc: one sendmsg of PAYLOAD bytes with MSG_ZEROCOPY and a UDP_SEGMENT
 * message of GSO_SEGMENT on a connected socket: one id for the whole send,
 * and the segments, each printed as received, for the host to check.
 */
static void gso_zc(const char *c)
{
	static unsigned char data[PAYLOAD];
	ctlbuf u;
	struct msghdr m;
	struct iovec iov;
	struct cmsghdr *h;
	struct cover cv;
	uint16_t seg = GSO_SEGMENT;
	int tx, rx, n;
	size_t j;
	ssize_t r;
	char why[256] = "", ok[64];

	memset(&cv, 0, sizeof(cv));
	if (zc_udp_pair(c, &tx, &rx) < 0)
		return;
	for (j = 0; j < PAYLOAD; j++)
		data[j] = pattern_byte(GSO_SEED, j);
	memset(&u, 0, sizeof(u));
	memset(&m, 0, sizeof(m));
	iov.iov_base = data;
	iov.iov_len = PAYLOAD;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.b;
	m.msg_controllen = CMSG_SPACE(sizeof(seg));
	h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_UDP;
	h->cmsg_type = UDP_SEGMENT;
	h->cmsg_len = CMSG_LEN(sizeof(seg));
	memcpy(CMSG_DATA(h), &seg, sizeof(seg));
	raw("send", u.b, m.msg_controllen, 0, NULL);
	r = sendmsg(tx, &m, MSG_ZEROCOPY);
	call("send_gso", r, errno);
	if (r != PAYLOAD) {
		why_add(why, sizeof(why), "sendmsg returned %ld", (long)r);
	} else {
		drain(tx, &cv, 1);
		cover_first(&cv, 1, why, sizeof(why));
	}
	n = receive(rx, "a", (PAYLOAD + GSO_SEGMENT - 1) / GSO_SEGMENT);
	snprintf(ok, sizeof(ok), "one send, one id, %d datagrams", n);
	verdict(c, why, ok);
	close(tx);
	close(rx);
}

static volatile sig_atomic_t signals;

static void count_signal(int sig)
{
	(void)sig;
	signals++;
}

/*
 * Non-blocking sends until the send buffer is full, the window closed (the
 * receiver does not read) and acknowledgements done: a round after a pause
 * must not get a byte in. Returns the bytes queued, or -1.
 */
static long fill(int fd)
{
	static unsigned char chunk[4096];
	long total = 0;
	int i;

	for (i = 0; i < 50; i++) {
		long round = 0;
		ssize_t r;

		while ((r = send(fd, chunk, sizeof(chunk), MSG_DONTWAIT)) > 0)
			round += r;
		if (r < 0 && errno != EAGAIN)
			return -1;
		total += round;
		if (round == 0 && total > 0)
			return total;
		usleep(200000);
	}
	return -1;
}

/* Reads exactly n bytes of fd. */
static int read_all(int fd, size_t n)
{
	char b[4096];

	while (n > 0) {
		ssize_t r = read(fd, b, n < sizeof(b) ? n : sizeof(b));

		if (r <= 0)
			return -1;
		n -= r;
	}
	return 0;
}

/*
 * The blocking send of restart, the helper child waiting on pipe end go;
 * applies the placeholder's answer to cv and what is wrong to why.
 */
static void restart_send(int tx, int go, struct cover *cv, char *why, size_t wn)
{
	ctlbuf sent, u;
	size_t len, ctllen;
	int flags = 0, e, o, before;
	ssize_t r;

	len = placeholder(sent.b);
	raw("send", sent.b, len, 0, NULL);
	memcpy(u.b, sent.b, len);
	ctllen = len;
	before = signals;
	if (write(go, "x", 1) != 1)
		why_add(why, wn, "pipe");
	r = send_ctl(tx, payload, PAYLOAD, u.b, &ctllen, &flags, 0);
	e = errno;
	call("sendmsg_restart", r, e);
	printf("VALUE name=signals v=%d\n", signals - before);
	raw("after", u.b, ctllen < len ? ctllen : len, flags, NULL);
	o = placeholder_outcome(u.b, sent.b, len, ctllen, flags, cv);
	if (o < 0)
		why_add(why, wn, "placeholder came back corrupt");
	else if (o == 0 && !(r < 0 && e == EINVAL))
		why_add(why, wn, "placeholder left unwritten by a send that went out");
	if (!(r < 0 && e == EINVAL) && (r != PAYLOAD || signals == before))
		why_add(why, wn, "sendmsg returned %ld errno %d after %d signals; want %d after one",
			(long)r, r < 0 ? e : 0, signals - before, PAYLOAD);
}

/*
 * restart's helper: once the parent is about to block (a byte on pipe p),
 * signals it, then drains the receiver rx until the parent shuts down.
 */
static void restart_child(int tx, int rx, int p[2])
{
	char b[4096];

	close(tx);
	close(p[1]);
	if (read(p[0], b, 1) == 1) {
		usleep(300000);
		kill(getppid(), SIGUSR1);
		usleep(300000);
	}
	while (read(rx, b, sizeof(b)) > 0)
		;
	_exit(0);
}

/*
 * restart: QUEUED_SENDS completions queued on a TCP socket, its send buffer
 * filled (the receiver reads nothing), then a blocking sendmsg of PAYLOAD
 * bytes with a placeholder. Once it blocks, a child process signals this one
 * (SIGUSR1, handled with SA_RESTART), so the call returns ERESTARTSYS inside
 * the kernel and is restarted with the same arguments; later the child
 * drains the receiver and the send completes. The restarted call must not
 * fail, and every completion must show up once, in the placeholder or on the
 * error queue.
 */
static void restart(const char *c)
{
	struct sigaction sa, old;
	union addr a;
	socklen_t alen;
	struct cover cv;
	int lfd, tx = -1, rx = -1, e, p[2] = { -1, -1 }, small = 4096;
	long filled;
	pid_t child = -1;
	char why[512] = "";

	memset(&cv, 0, sizeof(cv));
	lfd = bound(0, SOCK_STREAM, &a, &alen);
	/* Inherited by the accepted socket: a small window fills fast. */
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) < 0 ||
	    listen(lfd, 1) < 0) {
		end(c, "fail", "listener");
		return;
	}
	tx = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (tx < 0 || connect(tx, &a.sa, alen) < 0 || (rx = accept(lfd, NULL, NULL)) < 0) {
		end(c, "fail", "tcp pair");
		goto out;
	}
	e = zc_enable(tx);
	if (e) {
		zc_refused(c, e);
		goto out;
	}
	if (queue_completions(tx, QUEUED_SENDS, why, sizeof(why)) < 0 ||
	    read_all(rx, QUEUED_SENDS * PAYLOAD) < 0) {
		end(c, "fail", why[0] ? why : "receiving the zerocopy sends");
		goto out;
	}
	/* Received, so soon acknowledged: every completion queued. */
	wait_err(tx, 1000);
	usleep(100000);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = count_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, &old) < 0) {
		end(c, "fail", "sigaction");
		goto out;
	}
	setsockopt(tx, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	filled = fill(tx);
	printf("VALUE name=filled v=%ld\n", filled);
	if (filled < 0 || pipe(p) < 0) {
		end(c, "fail", "filling the send buffer");
		goto restore;
	}
	fflush(stdout);
	child = fork();
	if (child == 0)
		restart_child(tx, rx, p);
	close(p[0]);
	restart_send(tx, p[1], &cv, why, sizeof(why));
	drain_empty(tx, &cv, why, sizeof(why));
	cover_first(&cv, QUEUED_SENDS, why, sizeof(why));
	verdict(c, why, "every completion once");
	close(p[1]);
	/* The child reads until this end is shut down, after its signal. */
	shutdown(tx, SHUT_RDWR);
	if (child > 0)
		waitpid(child, NULL, 0);
restore:
	sigaction(SIGUSR1, &old, NULL);
out:
	if (tx >= 0)
		close(tx);
	if (rx >= 0)
		close(rx);
	close(lfd);
}

/* Control messages through real sendmsg/recvmsg: SCM_RIGHTS and IP_TTL. */
static void roundtrip(const char *c)
{
	int sv[2], p[2], tx, rx, one = 1, got = -1, ttl = -1, ok = 1;
	ctlbuf s, u;
	struct msghdr m;
	struct cmsghdr *h;
	struct iovec iov;
	char data[16] = "x", why[128];
	ssize_t r;

	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0 || pipe(p) < 0) {
		end(c, "fail", "socketpair/pipe");
		return;
	}
	/* SCM_RIGHTS: pass the pipe's read end. */
	memset(s.b, 0, sizeof(s.b));
	memset(&m, 0, sizeof(m));
	m.msg_control = s.b;
	m.msg_controllen = CMSG_SPACE(sizeof(int));
	h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &p[0], sizeof(int));
	iov.iov_base = data;
	iov.iov_len = 1;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	raw("send", s.b, m.msg_controllen, 0, NULL);
	r = sendmsg(sv[0], &m, 0);
	call("sendmsg_SCM_RIGHTS", r, errno);
	memset(&m, 0, sizeof(m));
	memset(u.b, 0, sizeof(u.b));
	iov.iov_len = sizeof(data);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.b;
	m.msg_controllen = 64;
	r = recvmsg(sv[1], &m, 0);
	call("recvmsg_SCM_RIGHTS", r, errno);
	if (r >= 0) {
		raw("recv", u.b, m.msg_controllen, m.msg_flags, NULL);
		h = CMSG_FIRSTHDR(&m);
		if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
		    h->cmsg_len == CMSG_LEN(sizeof(int))) {
			char b = 0;

			memcpy(&got, CMSG_DATA(h), sizeof(int));
			/* The passed descriptor must read what the pipe carries. */
			if (write(p[1], "k", 1) != 1 || read(got, &b, 1) != 1 || b != 'k')
				got = -1;
		}
	}
	printf("VALUE name=fd_works v=%d\n", got >= 0);
	ok &= got >= 0;
	/* IP_TTL: the kernel reports the received datagram's TTL. */
	if (udp_pair(&tx, &rx) < 0 ||
	    setsockopt(rx, SOL_IP, IP_RECVTTL, &one, sizeof(one)) < 0) {
		end(c, "fail", "udp pair / IP_RECVTTL");
		return;
	}
	r = send(tx, data, 4, 0);
	memset(&m, 0, sizeof(m));
	memset(u.b, 0, sizeof(u.b));
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.b;
	m.msg_controllen = 64;
	r = recvmsg(rx, &m, 0);
	call("recvmsg_IP_TTL", r, errno);
	if (r >= 0) {
		raw("recv", u.b, m.msg_controllen, m.msg_flags, NULL);
		for (h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
			if (h->cmsg_level == SOL_IP && h->cmsg_type == IP_TTL &&
			    h->cmsg_len == CMSG_LEN(sizeof(int)))
				memcpy(&ttl, CMSG_DATA(h), sizeof(int));
	}
	printf("VALUE name=ttl v=%d\n", ttl);
	ok &= ttl > 0 && ttl < 256;
	snprintf(why, sizeof(why), "SCM_RIGHTS fd %s, IP_TTL %d",
		 got >= 0 ? "works" : "missing", ttl);
	end(c, ok ? "ok" : "fail", why);
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
	close(tx);
	close(rx);
	if (got >= 0)
		close(got);
}

/*
 * A UDP socket with IP_RECVERR that sent one datagram to a closed port:
 * an ICMP port-unreachable error is (or will be) on its error queue.
 */
static int icmp_socket(void)
{
	union addr a;
	socklen_t alen;
	int closed = bound(0, SOCK_DGRAM, &a, &alen);
	int tx, one = 1;

	close(closed);
	tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (tx < 0 || connect(tx, &a.sa, alen) < 0 ||
	    setsockopt(tx, SOL_IP, IP_RECVERR, &one, sizeof(one)) < 0 ||
	    send(tx, payload, 32, 0) != 32)
		return -1;
	return tx;
}

/* Reads one error-queue message into cap bytes, waiting up to 5 s. */
static ssize_t icmp_read(int fd, unsigned char *buf, size_t cap, size_t *len, int *flags)
{
	double deadline = now() + 5;
	ssize_t r;

	for (;;) {
		r = recv_errq(fd, buf, cap, len, flags);
		if (r >= 0 || errno != EAGAIN || now() > deadline)
			return r;
		wait_err(fd, 50);
	}
}

static void icmp(const char *c)
{
	int tx = icmp_socket(), flags;
	ctlbuf u;
	size_t len;
	ssize_t r;

	if (tx < 0) {
		end(c, "fail", "socket setup");
		return;
	}
	r = icmp_read(tx, u.b, 256, &len, &flags);
	call("recvmsg_errqueue", r, errno);
	if (r < 0) {
		end(c, "fail", "no error-queue item");
	} else {
		raw("recv", u.b, len, flags, NULL);
		end(c, "ok", "ICMP error read from the error queue");
	}
	close(tx);
}

static void ctrunc(const char *c)
{
	int tx = icmp_socket(), flags;
	ctlbuf u;
	size_t len;
	ssize_t r;

	if (tx < 0) {
		end(c, "fail", "socket setup");
		return;
	}
	/* Room for a header and 4 bytes: the 16-byte sock_extended_err is cut. */
	r = icmp_read(tx, u.b, CMSG_LEN(4), &len, &flags);
	call("recvmsg_errqueue", r, errno);
	if (r < 0) {
		end(c, "fail", "no error-queue item");
	} else {
		raw("recv", u.b, len, flags, NULL);
		end(c, (flags & MSG_CTRUNC) ? "ok" : "fail",
		    (flags & MSG_CTRUNC) ? "MSG_CTRUNC seen" : "no MSG_CTRUNC");
	}
	close(tx);
}

/* ---- first_enable (conformance/agent/src/guest/first_enable.rs) --- */

#define FIRST_THREADS 2				/* cases::FIRST_THREADS */
#define FIRST_SENDS (SENDS / FIRST_THREADS)	/* cases::FIRST_SENDS */
#define FIRST_SPIN 4				/* cases::FIRST_SPIN */
#define FIRST_REFUSALS 8			/* cases::FIRST_REFUSALS */

/* Shared by the main thread and the senders (__atomic builtins). */
static int first_attempts, first_enabled, first_stop;

/* A placeholder send that was not a plain refusal. */
struct first_sent {
	long ret;
	int err, flags, early;	/* early: started before the enable returned */
	size_t ctllen;
	ctlbuf after;
};

struct first_sender {
	int fd, refused_before, refused_after, n;
	struct first_sent sent[FIRST_SENDS];
};

/*
 * A sender: placeholder sends (MSG_ZEROCOPY) until FIRST_SENDS went out,
 * FIRST_REFUSALS were refused after the enable, a send failed otherwise, or
 * the main thread says stop.
 */
static void *first_sender_run(void *arg)
{
	struct first_sender *s = arg;
	ctlbuf ph;
	size_t len = placeholder(ph.b);
	int went = 0;

	while (!__atomic_load_n(&first_stop, __ATOMIC_SEQ_CST)) {
		int after_enable = __atomic_load_n(&first_enabled, __ATOMIC_SEQ_CST);
		struct first_sent *x = &s->sent[s->n];
		ssize_t r;
		int err;

		memcpy(x->after.b, ph.b, len);
		x->ctllen = len;
		x->flags = 0;
		r = send_ctl(s->fd, payload, PAYLOAD, x->after.b, &x->ctllen, &x->flags,
			     MSG_ZEROCOPY);
		err = errno;
		__atomic_fetch_add(&first_attempts, 1, __ATOMIC_SEQ_CST);
		if (r < 0 && err == EINVAL && x->ctllen == len && !x->flags &&
		    !memcmp(x->after.b, ph.b, len)) {
			if (!after_enable)
				s->refused_before++;
			else if (++s->refused_after >= FIRST_REFUSALS)
				break;
			continue;
		}
		x->ret = r;
		x->err = err;
		x->early = !after_enable;
		if (x->ctllen > len)
			x->ctllen = len;
		s->n++;
		if (r != PAYLOAD || ++went == FIRST_SENDS)
			break;
	}
	return NULL;
}

/* Prints what the senders saw and requires every id exactly once. */
static void first_account(const char *c, int tx, const struct first_sender *s)
{
	struct cover cv;
	int i, j, before = 0, after = 0, early = 0, went = 0, written = 0, unwritten = 0;
	long inline_ids;
	char why[512] = "", ok[160];
	ctlbuf ph;
	size_t len = placeholder(ph.b);

	memset(&cv, 0, sizeof(cv));
	for (i = 0; i < FIRST_THREADS; i++) {
		before += s[i].refused_before;
		after += s[i].refused_after;
		for (j = 0; j < s[i].n; j++)
			early += s[i].sent[j].early && s[i].sent[j].ret >= 0;
	}
	printf("VALUE name=refused_before v=%d\n", before);
	printf("VALUE name=refused_after v=%d\n", after);
	printf("VALUE name=sent_early v=%d\n", early);
	for (i = 0; i < FIRST_THREADS; i++) {
		for (j = 0; j < s[i].n; j++) {
			const struct first_sent *x = &s[i].sent[j];
			ctlbuf u = x->after;
			int o;

			call("sendmsg_first", x->ret, x->err);
			raw("after", u.b, x->ctllen, x->flags, NULL);
			if (x->ret != PAYLOAD) {
				why_add(why, sizeof(why), "a placeholder send returned %ld errno %d",
					x->ret, x->err);
				continue;
			}
			went++;
			o = placeholder_outcome(u.b, ph.b, len, x->ctllen, x->flags, &cv);
			if (o < 0)
				why_add(why, sizeof(why), "placeholder came back corrupt");
			else if (o > 0)
				written++;
			else
				unwritten++;
		}
	}
	inline_ids = cv.ids;
	if (written && (unwritten || after))
		why_add(why, sizeof(why),
			"%d placeholders answered, yet %d of sends that went out came back "
			"unwritten and %d were refused after the enable", written, unwritten, after);
	if (went)
		drain(tx, &cv, went);
	drain_empty(tx, &cv, why, sizeof(why));
	cover_first(&cv, went, why, sizeof(why));
	snprintf(ok, sizeof(ok), "%d sends, %ld ids inline, every id once; %d refusals "
		 "before the enable, %d after", went, inline_ids, before, after);
	verdict(c, why, ok);
}

/*
 * first_enable: FIRST_THREADS threads send on one UDP socket with a fresh
 * placeholder each time while this thread sets SO_ZEROCOPY on it (UDP reads
 * control messages without the socket lock setsockopt holds). Until then
 * each placeholder is refused with EINVAL and nothing is sent. Every send
 * that went out must come back exactly once, in a placeholder or on the
 * error queue. As PID 1 with no SO_ZEROCOPY before, the enable is the first
 * since boot, which turns on the patch's static key: a placeholder taken
 * while it was still off would never be written back.
 */
static void first_enable(const char *c)
{
	static struct first_sender s[FIRST_THREADS];
	pthread_t th[FIRST_THREADS];
	int tx, rx, e, i, started = 0, first = is_init && !zc_enabled;
	double deadline;
	ctlbuf ph;

	if (udp_pair(&tx, &rx) < 0) {
		end(c, "fail", "udp pair");
		return;
	}
	printf("VALUE name=first_enable v=%d\n", first);
	if (!first)
		printf("NOTE first_enable=no: not PID 1, or SO_ZEROCOPY set earlier in this run\n");
	raw("send", ph.b, placeholder(ph.b), 0, NULL);
	fflush(stdout);
	memset(s, 0, sizeof(s));
	__atomic_store_n(&first_attempts, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&first_enabled, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&first_stop, 0, __ATOMIC_SEQ_CST);
	for (i = 0; i < FIRST_THREADS; i++) {
		s[i].fd = tx;
		if (pthread_create(&th[i], NULL, first_sender_run, &s[i]) != 0)
			break;
		started++;
	}
	/* Enable while they send: after each has had a few refusals. */
	deadline = now() + 10;
	while (__atomic_load_n(&first_attempts, __ATOMIC_SEQ_CST) < FIRST_THREADS * FIRST_SPIN &&
	       started == FIRST_THREADS && now() < deadline)
		sched_yield();
	e = zc_enable(tx);
	__atomic_store_n(&first_enabled, 1, __ATOMIC_SEQ_CST);
	if (e || started < FIRST_THREADS)
		__atomic_store_n(&first_stop, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (started < FIRST_THREADS)
		end(c, "fail", "pthread_create");
	else if (e)
		zc_refused(c, e);
	else
		first_account(c, tx, s);
	close(tx);
	close(rx);
}

/* ENOBUFS from an exhausted optmem budget, in a private network namespace.
 * As PID 1 the machine is ours and the case stays in the initial namespace:
 * before Linux 6.9 net.core.optmem_max is global and a new namespace has no
 * such file. */
static void enobufs_child(const char *c)
{
	const char *optmem = "/proc/sys/net/core/optmem_max";
	char old[64] = "";
	int tx, rx, e;
	FILE *f;
	ssize_t r;

	if (!is_init && unshare(CLONE_NEWNET) < 0) {
		char why[96];

		snprintf(why, sizeof(why), "unshare(CLONE_NEWNET): %s", strerror(errno));
		end(c, "skip", why);
		return;
	}
	if (!is_init && loopback_up() < 0) {
		end(c, "skip", "lo in the new namespace");
		return;
	}
	f = fopen(optmem, "r");
	if (!f || !fgets(old, sizeof(old), f)) {
		end(c, "skip", "optmem_max unreadable");
		return;
	}
	fclose(f);
	if (zc_udp_pair(c, &tx, &rx) < 0)
		return;
	f = fopen(optmem, "w");
	if (!f || fputs("0", f) < 0 || fclose(f) != 0) {
		end(c, "skip", "optmem_max not writable");
		return;
	}
	r = send(tx, payload, 128, MSG_ZEROCOPY);
	e = errno;
	f = fopen(optmem, "w");
	if (f) {
		fputs(old, f);
		fclose(f);
	}
	call("send_MSG_ZEROCOPY", r, e);
	if (r < 0 && e == ENOBUFS)
		end(c, "ok", "ENOBUFS");
	else
		end(c, "fail", "expected ENOBUFS");
}

static void enobufs(const char *c)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		enobufs_child(c);
		fflush(stdout);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		end(c, "fail", "child process");
}

/* Every case this agent runs, in the order it runs them by default
 * (abi_facts is the host's). */
static const char *const all_cases[] = {
	"native_facts", "first_enable", "zc_tcp4", "zc_tcp6", "zc_udp4", "zc_udp6", "probe",
	"hybrid", "inline_tcp4", "inline_tcp6", "inline_udp4", "inline_udp6",
	"bad_placeholder", "failed_send", "restart", "mixed_cmsgs", "sendmmsg_eor",
	"readonly_control", "sendmmsg_zc", "gso_zc", "cmsg_roundtrip", "ctrunc", "icmp",
	"enobufs",
};

static int known_case(const char *c)
{
	size_t i;

	for (i = 0; i < sizeof(all_cases) / sizeof(all_cases[0]); i++)
		if (!strcmp(c, all_cases[i]))
			return 1;
	return 0;
}

static void run(const char *c)
{
	printf("CASE name=%s\n", c);
	if (!strcmp(c, "native_facts"))
		native_facts(c);
	else if (!strcmp(c, "first_enable"))
		first_enable(c);
	else if (!strcmp(c, "zc_tcp4"))
		zc_case(c, 0, 1);
	else if (!strcmp(c, "zc_tcp6"))
		zc_case(c, 1, 1);
	else if (!strcmp(c, "zc_udp4"))
		zc_case(c, 0, 0);
	else if (!strcmp(c, "zc_udp6"))
		zc_case(c, 1, 0);
	else if (!strcmp(c, "probe"))
		probe(c);
	else if (!strcmp(c, "hybrid"))
		hybrid(c);
	else if (!strcmp(c, "inline_tcp4"))
		inline_case(c, 0, 1);
	else if (!strcmp(c, "inline_tcp6"))
		inline_case(c, 1, 1);
	else if (!strcmp(c, "inline_udp4"))
		inline_case(c, 0, 0);
	else if (!strcmp(c, "inline_udp6"))
		inline_case(c, 1, 0);
	else if (!strcmp(c, "bad_placeholder"))
		bad_placeholder(c);
	else if (!strcmp(c, "failed_send"))
		failed_send(c);
	else if (!strcmp(c, "restart"))
		restart(c);
	else if (!strcmp(c, "mixed_cmsgs"))
		mixed_cmsgs(c);
	else if (!strcmp(c, "sendmmsg_eor"))
		sendmmsg_eor(c);
	else if (!strcmp(c, "readonly_control"))
		readonly_control(c);
	else if (!strcmp(c, "sendmmsg_zc"))
		sendmmsg_zc(c);
	else if (!strcmp(c, "gso_zc"))
		gso_zc(c);
	else if (!strcmp(c, "cmsg_roundtrip"))
		roundtrip(c);
	else if (!strcmp(c, "ctrunc"))
		ctrunc(c);
	else if (!strcmp(c, "icmp"))
		icmp(c);
	else if (!strcmp(c, "enobufs"))
		enobufs(c);
	fflush(stdout);
}

/* PID 1 on a bare kernel: /proc for enobufs' sysctl, the console kept
 * for our lines (SYSLOG_ACTION_CONSOLE_LEVEL 8: only emergencies such as a
 * panic still print), and the kernel named. */
static void pid1_setup(void)
{
	struct utsname u;

	if (mount("proc", "/proc", "proc", 0, NULL) < 0)
		printf("NOTE mount_proc=%s\n", strerror(errno));
	klogctl(8, NULL, 1);
	if (uname(&u) == 0)
		printf("NOTE kernel=%s machine=%s\n", u.release, u.machine);
}

/* PID 1 must not return (the kernel would panic): power off, QEMU exits. */
static void power_off(void)
{
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	printf("NOTE reboot=%s\n", strerror(errno));
}

int main(int argc, char **argv)
{
	size_t i, named = 0;

	is_init = getpid() == 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	/*
	 * An unknown case ends the agent before anything runs, as the Rust
	 * agent does (words with '=' are kernel parameters, below).
	 */
	for (i = 1; i < (size_t)argc; i++)
		if (!strchr(argv[i], '=') && !known_case(argv[i])) {
			fprintf(stderr, "guest: unknown case \"%s\"\n", argv[i]);
			if (is_init) {
				printf("NOTE error=unknown case \"%s\"\n", argv[i]);
				power_off();
			}
			return 2;
		}
	memset(payload, 0x42, sizeof(payload));
	if (is_init)
		pid1_setup();
	if (loopback_up() < 0)
		printf("NOTE loopback_up=%s\n", strerror(errno));
	printf("GUEST target=%s lang=c pid=%d\n", TARGET_NAME, (int)getpid());
	/*
	 * Words with '=' are kernel parameters the kernel passed on to init
	 * (hppa's firmware appends earlycon=pdc after the "--"), never cases.
	 */
	for (i = 1; i < (size_t)argc; i++)
		if (strchr(argv[i], '='))
			printf("NOTE ignored=%s\n", argv[i]);
		else
			named++;
	if (named)
		for (i = 1; i < (size_t)argc; i++) {
			if (!strchr(argv[i], '='))
				run(argv[i]);
		}
	else
		for (i = 0; i < sizeof(all_cases) / sizeof(all_cases[0]); i++)
			run(all_cases[i]);
	printf("DONE\n");
	if (is_init)
		power_off();
	return 0;
}
