/*
 * peak_cpp.cpp: a C++ program whose peak is known to the byte.
 *
 * Built by tests/e2e_peak.rs with `g++ -g -O0`. Exits with code 0 and writes exactly one
 * line, "peak_cpp: done\n", to stdout after everything is freed.
 *
 * EXPECTED PEAK: 261712 bytes, reached by the reserve in peak::fill_vector. Live then:
 *
 *   function (ours)          how                                            bytes at peak
 *   peak::hold_array         new std::uint32_t[25000]   (no array cookie)          100000
 *   peak::make_widget        new Widget                 (sizeof 5000: vptr + 624*8)  5000
 *   peak::hold_gadgets       new Gadget[4]              (4*1000 + 8-byte cookie,     4008
 *                                                        Gadget has a destructor)
 *   peak::fill_vector        std::vector<double>::reserve(10000), then 10000
 *                            push_backs that never reallocate                     80000
 *   (libstdc++ startup)      the exception emergency pool, malloc(72704) made by   72704
 *                            libstdc++'s static initializer before main (GCC 12's
 *                            libstdc++.so.6.0.30; newer libstdc++ sizes it differently)
 *   total                                                                        261712
 *
 * Inclusive bytes per function at the peak: main 189008 (= 261712 - 72704: the pool is
 * allocated under the dynamic loader's init calls, not under main); peak::hold_array 100000;
 * peak::make_widget 5000; peak::hold_gadgets 4008; peak::fill_vector 80000. The leaf frames
 * of ours are followed by libstdc++ frames (operator new / operator new[]) and, for the
 * vector, by std::vector / allocator frames.
 *
 * C++ names: the functions live in namespace `peak`, so a symbolizer shows them as
 * `peak::hold_array()` (with the parameter list) or `peak::hold_array` (without).
 *
 * No stdio/iostream is used (nothing else allocates before the peak); the line is written
 * with write(2) after everything is freed.
 *
 * Verified (Debian 12: libstdc++ 12.2, glibc 2.36, x86_64) at -O0 and -O2 with
 * examples/tools/alloc_trace.c + peak_from_trace.py (peak 261712, the stacks above and
 * nothing else), valgrind --trace-malloc=yes (malloc(72704) at startup, then
 * _Znam(100000), _Znwm(5000), _Znam(4008), _Znwm(80000)), and
 * heaptrack_print (peak consumers 100.00K, 80.00K, 72.70K, 5.00K, 4.01K).
 */
#include <cstdint>
#include <unistd.h>
#include <vector>

#define NOINLINE __attribute__((noinline))

namespace peak {

class Widget {
public:
    Widget() { for (auto &d : data) d = 1; }
    virtual ~Widget() {}
    virtual std::uint64_t sum() const {
        std::uint64_t s = 0;
        for (auto d : data) s += d;
        return s;
    }
private:
    std::uint64_t data[624];  // + the vptr: sizeof(Widget) == 5000
};
static_assert(sizeof(Widget) == 5000, "Widget must be exactly 5000 bytes");

struct Gadget {
    char bytes[1000];
    Gadget() { bytes[0] = 1; }
    ~Gadget() { bytes[0] = 0; }  // non-trivial destructor: new[] stores an 8-byte count cookie
};
static_assert(sizeof(Gadget) == 1000, "Gadget must be exactly 1000 bytes");

static std::uint32_t *array;
static Widget *widget;
static Gadget *gadgets;
static std::vector<double> values;  // constructing an empty vector allocates nothing

NOINLINE void hold_array() {
    array = new std::uint32_t[25000];
    for (int i = 0; i < 25000; i++) array[i] = i;
}

NOINLINE void make_widget() {
    widget = new Widget();
}

NOINLINE void hold_gadgets() {
    gadgets = new Gadget[4];
}

NOINLINE void fill_vector() {
    values.reserve(10000);
    for (int i = 0; i < 10000; i++) values.push_back(i * 0.5);
}

NOINLINE void release_all() {
    delete[] array;
    delete widget;
    delete[] gadgets;
    std::vector<double>().swap(values);
}

}  // namespace peak

int main() {
    peak::hold_array();    // 72704 (pool) + 100000
    peak::make_widget();   // + 5000
    peak::hold_gadgets();  // + 4008
    peak::fill_vector();   // + 80000 = 261712 <- the peak
    peak::release_all();
    static const char line[] = "peak_cpp: done\n";
    if (write(1, line, sizeof line - 1) != sizeof line - 1) return 1;
    return 0;
}
