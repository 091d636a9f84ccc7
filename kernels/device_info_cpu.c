/* The CPU backend's services: what the trainer and flame-bench ask of a device. */
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cpu_kernels.h"

void cpu_synchronize(void) {}

void cpu_device_name(char *name, size_t n) { snprintf(name, n, "cpu"); }

double cpu_memory_in_use_gib(void)
{
    /* /proc/self/statm: total and resident pages */
    unsigned long long total = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &total, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1u << 30);
}

double cpu_memory_peak_gib(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss / 1048576.0; /* ru_maxrss is in KiB on Linux */
}

size_t cpu_memory_available(void)
{
    /* /proc/meminfo's MemAvailable, in kB: what can be had without swapping */
    unsigned long long kb = 0;
    char line[256];
    FILE *f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb ? (size_t)kb * 1024 : SIZE_MAX; /* unknown: no refusal */
}

/* no figure: MFU is reported as unknown on the CPU */
double cpu_peak_tflops(void) { return 0; }
