// calendar_bench.cc: BusinessCalendar::Add(8h) and Between per second.
//
// The calendar is Mon-Fri 09:00-17:00 Europe/Berlin.  Start instants walk
// through a year in steps of 7 h 13 min 0.000017 s, so they fall at every
// hour of every weekday, on weekends and on both daylight-saving days.
// Not built by CMake; build against the core library of a Release build:
//
//   cmake -S . -B build/rel -G Ninja -DCMAKE_BUILD_TYPE=Release
//   cmake --build build/rel --target crmflow_core
//   g++ -O2 -std=c++20 -Icpp/include benchmarks/calendar_bench.cc \
//       build/rel/libcrmflow_core.a -lcctz -o build/rel/calendar_bench
//   build/rel/calendar_bench [iterations]

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "crmflow/calendar.h"
#include "crmflow/timestamp.h"

int main(int argc, char** argv) {
  using crmflow::Duration;
  using crmflow::Timestamp;
  int64_t iterations = argc > 1 ? std::atoll(argv[1]) : 2000000;
  crmflow::CalendarSpec spec;
  spec.zone = crmflow::TimeZone::Load("Europe/Berlin").value();
  spec.Weekdays({crmflow::WorkInterval::Hm(9, 0, 17, 0)});
  crmflow::BusinessCalendar cal =
      crmflow::BusinessCalendar::Create(spec).value();

  const int64_t kHour = 3600 * 1000000LL;
  const int64_t step = 7 * kHour + 13 * 60 * 1000000LL + 17;
  const int64_t year = 365 * 24 * kHour;
  const Timestamp first = Timestamp::ParseIso("2026-01-01T00:00:00Z").value();
  const Duration eight_hours{8 * kHour};

  int64_t checksum = 0;
  int64_t offset = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iterations; ++i) {
    offset += step;
    if (offset >= year) offset -= year;
    auto r = cal.Add(Timestamp{first.micros + offset}, eight_hours);
    checksum += r.value().micros & 0xffff;
  }
  auto t1 = std::chrono::steady_clock::now();
  double add_seconds = std::chrono::duration<double>(t1 - t0).count();

  offset = 0;
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iterations; ++i) {
    offset += step;
    if (offset >= year) offset -= year;
    Timestamp a{first.micros + offset};
    checksum += cal.Between(a, Timestamp{a.micros + 72 * kHour}).micros & 1;
  }
  t1 = std::chrono::steady_clock::now();
  double between_seconds = std::chrono::duration<double>(t1 - t0).count();

  std::printf("Add(8h), Mon-Fri 09-17 Europe/Berlin: %.0f per second "
              "(%.0f ns each)\n",
              iterations / add_seconds, add_seconds * 1e9 / iterations);
  std::printf("Between(a, a + 72h): %.0f per second (%.0f ns each)\n",
              iterations / between_seconds,
              between_seconds * 1e9 / iterations);
  std::printf("checksum %lld\n", static_cast<long long>(checksum));
  return 0;
}
