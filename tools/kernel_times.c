/* Where a CUDA program's GPU time goes, measured while it runs (not one
 * kernel at a time, as Nsight Compute does): preloaded, it records every
 * kernel, copy and fill through CUPTI's activity records and, at exit,
 * prints to stderr over the trace's tail (the start-up and warm-up left out)
 *  - the window's length, the time the GPU was busy and idle, and the gaps;
 *  - the largest gaps, with what ran before and after each;
 *  - the kernels by total time (name, count, ms), each activity counted
 *    from the end of everything before it: a kernel launched as a
 *    programmatic dependent (flame's, on sm_90) starts while the one before
 *    runs and waits for it in griddepcontrol.wait, doing nothing, so that
 *    wait is the earlier kernel's time; the totals add up to the busy time.
 * Build and use on the GPU machine (or here, and carry it):
 *   gcc -O2 -shared -fPIC -I/usr/local/cuda/include tools/kernel_times.c \
 *       -o libkernel_times.so -L/usr/local/cuda/lib64 -lcupti
 *   KERNEL_TIMES_FROM=0.6 LD_PRELOAD=./libkernel_times.so flame-bench ...
 * KERNEL_TIMES_FROM: the share of the trace's time left out at its start
 * (0.5 by default); KERNEL_TIMES_TOP: how many gaps and kernels (15);
 * KERNEL_TIMES_GRID=1: kernels told apart by their grids too (a library's
 * kernel serves several shapes of product: its grid says which). */
#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct activity {
    unsigned long long start, end; /* ns */
    unsigned long long own;        /* ns of it after everything that started before it had ended */
    const char *name;
} activity;

static activity *trace;
static size_t n_trace, cap_trace;

static void CUPTIAPI buffer_wanted(uint8_t **buffer, size_t *size, size_t *max_records)
{
    *size = 8u << 20;
    *buffer = aligned_alloc(8, *size);
    *max_records = 0;
}

static void record(unsigned long long start, unsigned long long end, const char *name)
{
    if (n_trace == cap_trace) {
        cap_trace = cap_trace ? 2 * cap_trace : 1u << 16;
        trace = realloc(trace, cap_trace * sizeof *trace);
    }
    trace[n_trace++] = (activity){start, end, 0, name};
}

/* the kernel's name, with its grid in front when KERNEL_TIMES_GRID is set */
static const char *kernel_label(const CUpti_ActivityKernel10 *k)
{
    const char *grid = getenv("KERNEL_TIMES_GRID");
    if (!grid || strcmp(grid, "1") != 0)
        return strdup(k->name);
    char *label = malloc(strlen(k->name) + 40);
    sprintf(label, "[%d,%d,%d] %s", k->gridX, k->gridY, k->gridZ, k->name);
    return label;
}

static void CUPTIAPI buffer_done(CUcontext context, uint32_t stream, uint8_t *buffer, size_t size, size_t valid)
{
    (void)context, (void)stream, (void)size;
    CUpti_Activity *r = NULL;
    while (cuptiActivityGetNextRecord(buffer, valid, &r) == CUPTI_SUCCESS) {
        if (r->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) {
            const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)r;
            record(k->start, k->end, kernel_label(k));
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
            const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)r;
            record(m->start, m->end, "(copy)");
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
            const CUpti_ActivityMemset4 *m = (const CUpti_ActivityMemset4 *)r;
            record(m->start, m->end, "(fill)");
        }
    }
    free(buffer);
}

__attribute__((constructor)) static void start_recording(void)
{
    cuptiActivityRegisterCallbacks(buffer_wanted, buffer_done);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET);
}

static int by_start(const void *a, const void *b)
{
    const activity *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

typedef struct gap {
    unsigned long long ns;
    const char *before, *after;
} gap;

static int by_length(const void *a, const void *b)
{
    const gap *x = a, *y = b;
    return x->ns > y->ns ? -1 : x->ns < y->ns;
}

typedef struct kernel_total {
    const char *name;
    unsigned long long ns, count;
} kernel_total;

static int by_name(const void *a, const void *b) { return strcmp(((const activity *)a)->name, ((const activity *)b)->name); }

static int by_total(const void *a, const void *b)
{
    const kernel_total *x = a, *y = b;
    return x->ns > y->ns ? -1 : x->ns < y->ns;
}

static double env_number(const char *name, double fallback)
{
    const char *v = getenv(name);
    return v ? atof(v) : fallback;
}

/* busy and idle time over activities [0, n) (sorted by start), the gaps
 * into gaps[], each activity's own share of the busy time into its `own` */
static void print_idle(activity *a, size_t n, gap *gaps, int top)
{
    unsigned long long busy = 0, idle = 0, short_idle = 0, end = a[0].start;
    size_t n_gaps = 0;
    const char *last = "";
    for (size_t i = 0; i < n; i++) {
        if (a[i].start > end) {
            unsigned long long g = a[i].start - end;
            idle += g, short_idle += g < 5000 ? g : 0;
            gaps[n_gaps++] = (gap){g, last, a[i].name};
        }
        unsigned long long from = a[i].start > end ? a[i].start : end;
        a[i].own = a[i].end > from ? a[i].end - from : 0;
        busy += a[i].own;
        if (a[i].end > end)
            end = a[i].end, last = a[i].name;
    }
    fprintf(stderr, "kernel_times: %.2f ms from the first activity of the window to the last: busy %.2f ms, idle %.2f ms "
            "in %zu gaps (%.2f ms of them in gaps under 5 us); %zu activities\n",
            (end - a[0].start) / 1e6, busy / 1e6, idle / 1e6, n_gaps, short_idle / 1e6, n);
    qsort(gaps, n_gaps, sizeof *gaps, by_length);
    for (size_t i = 0; i < n_gaps && i < (size_t)top; i++)
        fprintf(stderr, "  gap %9.1f us after %.60s, before %.60s\n", gaps[i].ns / 1e3, gaps[i].before, gaps[i].after);
}

static void print_kernels(activity *a, size_t n, int top)
{
    qsort(a, n, sizeof *a, by_name);
    kernel_total *totals = calloc(n, sizeof *totals);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k == 0 || strcmp(totals[k - 1].name, a[i].name) != 0)
            totals[k++] = (kernel_total){a[i].name, 0, 0};
        totals[k - 1].ns += a[i].own, totals[k - 1].count++;
    }
    qsort(totals, k, sizeof *totals, by_total);
    for (size_t i = 0; i < k && i < (size_t)top; i++)
        fprintf(stderr, "  %9.2f ms %6llu x  %.100s\n", totals[i].ns / 1e6, totals[i].count, totals[i].name);
    free(totals);
}

__attribute__((destructor)) static void report(void)
{
    cuptiActivityFlushAll(1);
    if (n_trace == 0) {
        fprintf(stderr, "kernel_times: no GPU activity recorded\n");
        return;
    }
    qsort(trace, n_trace, sizeof *trace, by_start);
    unsigned long long first = trace[0].start, last = 0;
    for (size_t i = 0; i < n_trace; i++)
        last = trace[i].end > last ? trace[i].end : last;
    unsigned long long from = first + (unsigned long long)((last - first) * env_number("KERNEL_TIMES_FROM", 0.5));
    size_t skip = 0;
    while (skip < n_trace && trace[skip].start < from)
        skip++;
    if (skip == n_trace)
        return;
    int top = (int)env_number("KERNEL_TIMES_TOP", 15);
    gap *gaps = calloc(n_trace - skip, sizeof *gaps);
    print_idle(trace + skip, n_trace - skip, gaps, top); /* sets each activity's `own`, */
    free(gaps);
    print_kernels(trace + skip, n_trace - skip, top); /* which this sums by kernel */
}
