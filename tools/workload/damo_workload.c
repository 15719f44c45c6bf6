/*
 * damo_workload: a memory access pattern with known hot, warm and cold areas, for
 * testing DAMON monitoring (tests/kernel) and making the bundled sample archive.
 *
 *   damo_workload [--mib N] [--mode hwc|phases|pageout] [--duration SECONDS]
 *                 [--phase_sec SECONDS] [--duty PERCENT]
 *
 * It maps N MiB (default 100) of anonymous memory, writes every page once, prints
 *   ready <start> <end>
 * (decimal addresses of the mapping, end exclusive) on stdout, flushes, then loops:
 *
 *   hwc      first 10% written continuously (hot), next 30% every 20th round (warm),
 *            the remaining 60% never again (cold).
 *   phases   the mapping is split into 8 areas; area 0 is always hot, area 7 is never
 *            touched, and a "working set" of two adjacent areas moves one area up every
 *            --phase_sec seconds (default 10) through areas 1..6.
 *   pageout  like hwc, but the cold 60% is written only once: a DAMOS pageout scheme can
 *            reclaim it; prints "rss <kB>" lines on request (SIGUSR1) is not needed, the
 *            test reads /proc/PID/statm.
 *
 * --duty (default 30) caps the CPU share: after each round it sleeps so that touching
 * memory takes about that percentage of the time. On an emulated (TCG) guest a busy
 * workload would otherwise starve everything else, the monitoring tools included.
 *
 * Stops after --duration seconds (default: run until killed). Writes one byte per 4 KiB
 * page, so the work per round is small and the access pattern is what DAMON samples.
 * The writing happens in workload_hot_loop, workload_warm_loop and
 * workload_moving_set_loop, which a CPU profile shows as the hot functions.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile uint64_t sink;

static void touch(volatile char *p, size_t len, unsigned char v)
{
	for (size_t off = 0; off < len; off += PAGE)
		p[off] = v;
}

/*
 * The phases' work in functions of their own (never inlined), so that a CPU profile
 * names them: tests look for them among the hotspots of `report holistic`.
 */
__attribute__((noinline)) void workload_hot_loop(char *p, size_t len, unsigned char v)
{
	touch(p, len, v);
}

__attribute__((noinline)) void workload_warm_loop(char *p, size_t len, unsigned char v)
{
	touch(p, len, v);
}

__attribute__((noinline)) void workload_moving_set_loop(char *p, size_t len, unsigned char v)
{
	touch(p, len, v);
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--mib N] [--mode hwc|phases|pageout] [--duration S] "
			"[--phase_sec S] [--duty PERCENT]\n", prog);
	exit(2);
}

int main(int argc, char **argv)
{
	size_t mib = 100;
	const char *mode = "hwc";
	double duration = -1, phase_sec = 10, duty = 30;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
			mode = argv[++i];
		else if (!strcmp(argv[i], "--duration") && i + 1 < argc)
			duration = atof(argv[++i]);
		else if (!strcmp(argv[i], "--phase_sec") && i + 1 < argc)
			phase_sec = atof(argv[++i]);
		else if (!strcmp(argv[i], "--duty") && i + 1 < argc)
			duty = atof(argv[++i]);
		else
			usage(argv[0]);
	}
	if (duty <= 0 || duty > 100)
		usage(argv[0]);
	if (mib < 8 || (strcmp(mode, "hwc") && strcmp(mode, "phases") && strcmp(mode, "pageout")))
		usage(argv[0]);

	size_t len = mib << 20;
	char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	/* keep THP out of the way: DAMON regions then follow our 4K pattern */
	madvise(buf, len, MADV_NOHUGEPAGE);
	touch(buf, len, 1);
	printf("ready %lu %lu\n", (unsigned long)buf, (unsigned long)(buf + len));
	fflush(stdout);

	double t0 = now();
	size_t hot = len / 10 / PAGE * PAGE;
	size_t warm = len * 3 / 10 / PAGE * PAGE;
	size_t area = len / 8 / PAGE * PAGE;
	for (uint64_t round = 0;; round++) {
		double t = now() - t0;
		if (duration >= 0 && t >= duration)
			break;
		if (!strcmp(mode, "phases")) {
			int phase = (int)(t / phase_sec) % 5;  /* working set: areas 1+phase, 2+phase */
			workload_hot_loop(buf, area, (unsigned char)round);
			workload_moving_set_loop(buf + (1 + phase) * area, 2 * area,
						 (unsigned char)round);
		} else {
			workload_hot_loop(buf, hot, (unsigned char)round);
			if (round % 20 == 0)
				workload_warm_loop(buf + hot, warm, (unsigned char)round);
		}
		/* pace: touching takes about duty% of the time */
		double busy = now() - t0 - t;
		double idle = busy * (100 - duty) / duty;
		if (idle > 0.0001)
			usleep((useconds_t)(idle * 1e6));
	}
	sink = buf[0];
	return 0;
}
