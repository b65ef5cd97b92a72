/*
 * guest.c: the C guest agent, for the targets Rust cannot build (alpha and
 * hppa have no LLVM backend). It speaks the same line protocol as the Rust
 * guest (conformance/src/guest.rs, "Protocol"), performs the same cases
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
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
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

/* SO_ZEROCOPY; returns 0 or the errno, printed either way. */
static int zc_enable(int fd)
{
	int one = 1;
	int r = setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one));
	int e = errno;

	call("setsockopt_SO_ZEROCOPY", r, e);
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
	int tx, rx, flags = 0, o, e, err;
	ssize_t r, q;

	if (udp_pair(&tx, &rx) < 0) {
		end(c, "fail", "udp pair");
		return;
	}
	e = zc_enable(tx);
	if (e) {
		zc_refused(c, e);
		goto out;
	}
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
out:
	close(tx);
	close(rx);
}

/*
 * Both mechanisms: placeholder sends with MSG_ZEROCOPY (each after the first
 * once the previous completion is queued), then the error queue.
 */
static void hybrid(const char *c)
{
	int tx, rx, e, i, mode = 0;	/* 0 unprobed, 1 inline, 2 rejected, 3 unwritten */
	struct cover cv;
	char why[128];
	static const char *const modes[] = { "Unprobed", "Inline",
		"ErrorQueue(Rejected)", "ErrorQueue(Unwritten)", "ErrorQueue(Corrupt)" };

	memset(&cv, 0, sizeof(cv));
	if (udp_pair(&tx, &rx) < 0) {
		end(c, "fail", "udp pair");
		return;
	}
	e = zc_enable(tx);
	if (e) {
		zc_refused(c, e);
		goto out;
	}
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
	if (udp_pair(&tx, &rx) < 0) {
		end(c, "fail", "udp pair");
		return;
	}
	e = zc_enable(tx);
	if (e) {
		zc_refused(c, e);
		goto out;
	}
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

/* Whether this agent is PID 1 on a bare kernel (the system tier). */
static int is_init;

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
	if (udp_pair(&tx, &rx) < 0) {
		end(c, "fail", "udp pair");
		return;
	}
	e = zc_enable(tx);
	if (e) {
		zc_refused(c, e);
		return;
	}
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

static void run(const char *c)
{
	printf("CASE name=%s\n", c);
	if (!strcmp(c, "native_facts"))
		native_facts(c);
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
	else if (!strcmp(c, "cmsg_roundtrip"))
		roundtrip(c);
	else if (!strcmp(c, "ctrunc"))
		ctrunc(c);
	else if (!strcmp(c, "icmp"))
		icmp(c);
	else if (!strcmp(c, "enobufs"))
		enobufs(c);
	else
		end(c, "fail", "unknown case");
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
	static const char *const all[] = {
		"native_facts", "zc_tcp4", "zc_tcp6", "zc_udp4", "zc_udp6", "probe",
		"hybrid", "inline_tcp4", "inline_tcp6", "inline_udp4", "inline_udp6",
		"bad_placeholder", "cmsg_roundtrip", "ctrunc", "icmp", "enobufs",
	};
	size_t i;

	is_init = getpid() == 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(payload, 0x42, sizeof(payload));
	if (is_init)
		pid1_setup();
	if (loopback_up() < 0)
		printf("NOTE loopback_up=%s\n", strerror(errno));
	printf("GUEST target=%s lang=c pid=%d\n", TARGET_NAME, (int)getpid());
	if (argc > 1)
		for (i = 1; i < (size_t)argc; i++)
			run(argv[i]);
	else
		for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			run(all[i]);
	printf("DONE\n");
	if (is_init)
		power_off();
	return 0;
}
