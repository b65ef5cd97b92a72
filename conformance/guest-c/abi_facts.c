/*
 * abi_facts.c: prints, as one JSON line, the MSG_ZEROCOPY ABI numbers and
 * layout sizes that this target's own C headers define.
 *
 * The conformance runner compiles it with each cross toolchain (so the
 * values come from that toolchain's linux-libc-dev and libc headers, not
 * from our tables), runs it under qemu-user, and compares every key with
 * `msgzc-conformance abi-table --json` for the same target. Keys are the
 * kernel macro names; a macro the headers lack prints null.
 *
 * Build: <cross>-gcc -O1 -static -DTARGET_NAME='"mips"' abi_facts.c
 *
 * The C guest agent (guest.c) includes this file with ABI_FACTS_LIBRARY
 * defined and calls abi_facts() itself. Keys beyond the abi tables
 * (ECONNREFUSED, SCM_RIGHTS, IP_TTL, IP_RECVTTL) are numbers the
 * conformance cases use; the runner checks them against its own table.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/uio.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <asm/socket.h>

#ifndef TARGET_NAME
#define TARGET_NAME "unknown"
#endif

static int first = 1;

static void key(const char *name)
{
	printf("%s\"%s\":", first ? "" : ",", name);
	first = 0;
}

static void num(const char *name, long long v)
{
	key(name);
	printf("%lld", v);
}

static void __attribute__((unused)) none(const char *name)
{
	key(name);
	printf("null");
}

#define NUM(m) num(#m, (long long)(m))
#define OPT(m) none(#m)

/* Prints the facts as one JSON object, without a newline. */
static void abi_facts(void)
{
	const uint16_t probe = 1;
	unsigned char b0;

	memcpy(&b0, &probe, 1);
	first = 1;
	printf("{");
	key("target");
	printf("\"%s\"", TARGET_NAME);
	key("big_endian");
	printf("%s", b0 == 0 ? "true" : "false");
	num("long_bytes", (long long)sizeof(long));
	num("cmsghdr_size", (long long)sizeof(struct cmsghdr));
	num("cmsghdr_align", (long long)_Alignof(struct cmsghdr));
	num("CMSG_LEN_0", (long long)CMSG_LEN(0));
	num("CMSG_SPACE_1", (long long)CMSG_SPACE(1));
	num("CMSG_SPACE_16", (long long)CMSG_SPACE(16));
	num("sock_extended_err_size", (long long)sizeof(struct sock_extended_err));
	/* SO_EE_OFFENDER: the sockaddr after sock_extended_err. */
	num("sockaddr_in_size", (long long)sizeof(struct sockaddr_in));
	num("sockaddr_in6_size", (long long)sizeof(struct sockaddr_in6));
	num("sin6_scope_id_offset",
	    (long long)offsetof(struct sockaddr_in6, sin6_scope_id));
	NUM(AF_UNSPEC);
	NUM(AF_INET);
	NUM(AF_INET6);
	NUM(SOL_SOCKET);
	NUM(SO_TYPE);
	NUM(SO_ERROR);
	NUM(SO_SNDBUF);
	NUM(SO_RCVBUF);
	NUM(SOCK_STREAM);
	NUM(SOCK_DGRAM);
#ifdef SO_ZEROCOPY
	NUM(SO_ZEROCOPY);
#else
	OPT(SO_ZEROCOPY);
#endif
#ifdef SO_TIMESTAMPING_OLD
	NUM(SO_TIMESTAMPING_OLD);
#else
	OPT(SO_TIMESTAMPING_OLD);
#endif
#ifdef SO_TIMESTAMPING_NEW
	NUM(SO_TIMESTAMPING_NEW);
#else
	OPT(SO_TIMESTAMPING_NEW);
#endif
	NUM(MSG_ZEROCOPY);
	NUM(MSG_ERRQUEUE);
	NUM(MSG_CTRUNC);
	NUM(MSG_DONTWAIT);
	NUM(MSG_TRUNC);
	NUM(SOL_IP);
	NUM(SOL_IPV6);
	NUM(IP_RECVERR);
	NUM(IPV6_RECVERR);
	NUM(SOL_UDP);
	NUM(UDP_SEGMENT);
	NUM(UIO_MAXIOV);
	NUM(SO_EE_ORIGIN_NONE);
	NUM(SO_EE_ORIGIN_LOCAL);
	NUM(SO_EE_ORIGIN_ICMP);
	NUM(SO_EE_ORIGIN_ICMP6);
	NUM(SO_EE_ORIGIN_TXSTATUS);
	NUM(SO_EE_ORIGIN_ZEROCOPY);
	NUM(SO_EE_ORIGIN_TXTIME);
	NUM(SO_EE_CODE_ZEROCOPY_COPIED);
	NUM(ENOBUFS);
	NUM(EINVAL);
	NUM(EAGAIN);
	NUM(ENOPROTOOPT);
	NUM(SOF_TIMESTAMPING_TX_HARDWARE);
	NUM(SOF_TIMESTAMPING_TX_SOFTWARE);
	NUM(SOF_TIMESTAMPING_SOFTWARE);
	NUM(SOF_TIMESTAMPING_OPT_ID);
	NUM(SOF_TIMESTAMPING_TX_SCHED);
	NUM(SOF_TIMESTAMPING_TX_ACK);
	NUM(SOF_TIMESTAMPING_OPT_TSONLY);
#ifdef SOF_TIMESTAMPING_TX_RECORD_MASK
	NUM(SOF_TIMESTAMPING_TX_RECORD_MASK);
#else
	OPT(SOF_TIMESTAMPING_TX_RECORD_MASK);
#endif
	NUM(ECONNREFUSED);
	NUM(SCM_RIGHTS);
	NUM(IP_TTL);
	NUM(IP_RECVTTL);
	printf("}");
}

#ifndef ABI_FACTS_LIBRARY
int main(void)
{
	abi_facts();
	printf("\n");
	return 0;
}
#endif
