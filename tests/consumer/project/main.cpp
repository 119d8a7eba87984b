// Uses only the installed public headers: open two files, plan, copy, check the bytes and the report.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <offcopy/offcopy.hpp>

namespace {
int fail(const std::string& what) {
  std::cerr << "consumer: " << what << "\n";
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: consumer WORK_DIR");
  const std::string src_path = std::string(argv[1]) + "/consumer-src.bin";
  const std::string dst_path = std::string(argv[1]) + "/consumer-dst.bin";
  std::vector<char> data(64 * 1024);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + 7);
  std::ofstream(src_path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));
  std::ofstream(dst_path, std::ios::binary | std::ios::trunc).put('\0');

  auto src = offcopy::device::open(src_path);
  if (!src.ok()) return fail(src.error().to_string());
  offcopy::open_options w;
  w.writable = true;
  auto dst = offcopy::device::open(dst_path, w);
  if (!dst.ok()) return fail(dst.error().to_string());

  offcopy::request req{src.value(), dst.value(), {{0, 4096, 32 * 1024}}};
  auto plan = offcopy::make_plan(req);
  if (!plan.ok()) return fail(plan.error().to_string());
  offcopy::report rep = offcopy::execute(req, plan.value());
  if (!rep.result.ok()) return fail(rep.result.to_string());
  if (rep.bytes_copied != 32 * 1024) return fail("bytes_copied " + std::to_string(rep.bytes_copied));

  std::ifstream in(dst_path, std::ios::binary);
  std::vector<char> got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (got.size() != 4096 + 32 * 1024 || std::memcmp(got.data() + 4096, data.data(), 32 * 1024) != 0)
    return fail("destination bytes differ");
  // The job API: the same copy as one call, as the CLI runs it.
  offcopy::job j;
  j.source = src_path;
  j.destination = dst_path;
  j.extents = {{0, 0, 4096}};
  offcopy::job_result r = offcopy::run(j);
  if (!r.ok() || r.exit_status() != 0 || r.bytes_copied() != 4096) return fail("job: " + r.error_line());
  std::remove(src_path.c_str());
  std::remove(dst_path.c_str());
  std::cout << "offcopy " << offcopy::version() << ": " << rep.to_json() << "\n";
  return 0;
}
