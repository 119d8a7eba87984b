// The in-process SCSI copy manager: see scsi_model.hpp.
//
// An oracle must not share our code (STYLE.md, principle 14): every CDB and parameter list is
// decoded here with the model's own byte offsets and constants, written from FreeBSD CTL's
// structures (sys/cam/scsi/scsi_all.h: scsi_extended_copy_lid1_data, scsi_ec_cscd_id,
// scsi_ec_segment_b2b, scsi_populate_token_data, scsi_write_using_token_data, scsi_range_desc,
// scsi_receive_copy_status_lid1_data, scsi_receive_copy_status_lid4_data) and its copy manager
// (sys/cam/ctl/ctl_tpc.c), never with src/scsi/wire.*. Only the transport seam (scsi_reply,
// data_direction, transport) is shared: that is the interface under test.
#include "tests/models/scsi_model.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"

namespace offcopy::test {

using detail::scsi::data_direction;
using detail::scsi::scsi_reply;
using detail::scsi::transport;

namespace {

// ---- the model's own big-endian field access -------------------------------------------------
std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
std::uint64_t be64(const std::uint8_t* p) { return (std::uint64_t{be32(p)} << 32) | be32(p + 4); }
void set16(std::uint8_t* p, std::uint64_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void set32(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}
void set64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
}

// ---- codes, as CTL's scsi_all.h names them ----------------------------------------------------
constexpr std::uint8_t INQUIRY = 0x12;
constexpr std::uint8_t SERVICE_ACTION_IN = 0x9E;    // SA 0x10: READ CAPACITY(16)
constexpr std::uint8_t EXTENDED_COPY = 0x83;        // THIRD-PARTY COPY OUT
constexpr std::uint8_t RECEIVE_COPY_STATUS = 0x84;  // THIRD-PARTY COPY IN
constexpr std::uint8_t EC_EC_LID1 = 0x00, EC_PT = 0x10, EC_WUT = 0x11;
constexpr std::uint8_t RCS_RCS_LID1 = 0x00, RCS_RCOP = 0x03, RCS_RRTI = 0x07;
constexpr std::uint8_t EC_CSCD_ID = 0xE4, EC_SEG_B2B = 0x02;
constexpr std::uint8_t EC_LIST_ID_USAGE_NONE = 3;  // header byte 1 bits 4-3
constexpr std::uint8_t EC_PT_IMMED = 0x01, EC_WUT_IMMED = 0x01, EC_WUT_DEL_TKN = 0x02;
constexpr std::uint32_t ROD_TYPE_BLOCK_ZERO = 0xFFFF0001;
constexpr std::uint8_t RCS_TC_LBAS = 0xF1;
// COPY OPERATION STATUS (RCS_CCS_* of the LID4 reply, which RRTI shares).
constexpr std::uint8_t CCS_COMPLETED = 0x01, CCS_ERROR = 0x02;
// Sense keys.
constexpr std::uint8_t KEY_ILLEGAL_REQUEST = 0x05, KEY_COPY_ABORTED = 0x0A;

/// Fixed-format sense (response code 70h, additional length 10, ASC/ASCQ at 12/13).
std::vector<std::uint8_t> fixed_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq) {
  std::vector<std::uint8_t> s(18, 0);
  s[0] = 0x70;
  s[2] = key;
  s[7] = 10;
  s[12] = asc;
  s[13] = ascq;
  return s;
}

scsi_reply check(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq) {
  scsi_reply r;
  r.sam_status = 0x02;  // CHECK CONDITION
  r.sense = fixed_sense(key, asc, ascq);
  return r;
}
scsi_reply illegal(std::uint8_t asc, std::uint8_t ascq) { return check(KEY_ILLEGAL_REQUEST, asc, ascq); }
scsi_reply copy_aborted() { return check(KEY_COPY_ABORTED, 0x0D, 0x02); }
scsi_reply check_with(const std::vector<std::uint8_t>& sense) {
  scsi_reply r;
  r.sam_status = 0x02;
  r.sense = sense;
  return r;
}

/// Copies `reply` into the data-in buffer, reporting the residual.
scsi_reply data_in(std::span<std::uint8_t> out, const std::vector<std::uint8_t>& reply) {
  scsi_reply r;
  const std::size_t n = std::min(out.size(), reply.size());
  std::fill(out.begin(), out.end(), 0);
  std::copy_n(reply.begin(), n, out.begin());
  r.data_resid_bytes = static_cast<std::uint32_t>(out.size() - n);
  return r;
}

/// `blocks` expressed in a TRANSFER COUNT UNITS code, rounded down (F1h blocks, 00h-06h 2^(10n) bytes).
std::uint64_t count_in_units(std::uint64_t blocks, std::uint32_t block_bytes, std::uint8_t units) {
  if (units == RCS_TC_LBAS) return blocks;
  const unsigned shift = 10u * units;
  return shift >= 64 ? 0 : (blocks * block_bytes) >> shift;
}

std::string seg_text(std::uint64_t src, std::uint64_t dst, std::uint64_t blocks) {
  return std::to_string(src) + ">" + std::to_string(dst) + "x" + std::to_string(blocks);
}

class model_transport final : public transport {
 public:
  model_transport(scsi_model* m, scsi_model::lu* l, std::string name) : m_(m), l_(l), name_(std::move(name)) {}
  model_transport(const model_transport&) = delete;
  model_transport& operator=(const model_transport&) = delete;
  // The teardown check: a transport must outlive every command sent through it.
  ~model_transport() override {
    std::lock_guard lock(m_->mutex);
    ++m_->audit().torn_down;
    if (executing_ != 0) ++m_->audit().torn_down_while_executing;
  }
  scsi_reply execute(std::span<const std::uint8_t> cdb, data_direction dir, std::span<std::uint8_t> data,
                     unsigned) override {
    {
      std::lock_guard lock(m_->mutex);
      ++executing_;
      ++m_->running;
      m_->audit().max_concurrent = std::max(m_->audit().max_concurrent, m_->running);
    }
    if (m_->on_execute) m_->on_execute(cdb);
    // Other threads may run commands meanwhile (worker threads): the data buffer is read and
    // written under the model's lock only.
    std::lock_guard lock(m_->mutex);
    scsi_reply r = m_->execute(*l_, cdb, dir, data);
    --executing_;
    --m_->running;
    return r;
  }
  std::string name() const override { return name_; }

 private:
  scsi_model* m_;
  scsi_model::lu* l_;
  std::string name_;
  unsigned executing_ = 0;
};

}  // namespace

struct scsi_model::lu {
  scsi_model* model = nullptr;
  std::string name;
  std::string path;
  int fd = -1;
  std::uint64_t size_bytes = 0;
  std::uint32_t block_bytes = 512;
  std::vector<std::uint8_t> naa;
  std::map<std::uint32_t, std::shared_ptr<op_status>> status_by_list_id;
  struct lid1_record {
    std::uint8_t status = 0;
    std::uint16_t segments_processed = 0;
    std::uint64_t transfer_blocks = 0;
  };
  std::map<std::uint8_t, lid1_record> lid1_status;  // by list id
  [[nodiscard]] std::uint64_t blocks() const { return size_bytes / block_bytes; }
};

struct scsi_model::rod {
  std::uint64_t id = 0;
  std::vector<std::uint8_t> data;  // point-in-time copy of the populated ranges
  std::uint32_t block_bytes = 512;
  unsigned writes = 0;
  bool expired = false;
};

struct scsi_model::op_status {
  std::uint8_t service_action = 0;
  std::uint8_t copy_status = CCS_COMPLETED;
  std::uint64_t transfer_blocks = 0;
  std::vector<std::uint8_t> sense;
  std::vector<std::uint8_t> token;
  unsigned polls_left = 0;
};

scsi_model::scsi_model(scsi_model_config cfg) : cfg_(cfg) {
  detail::scsi::set_transport_factory([this](const detail::device_state& d) { return transport_for(d.caps.path); });
  // The model's logical units are regular files: let the SCSI backends discover those too.
  for (const char* b : {"scsi-xcopy", "scsi-token"}) detail::set_discovered_kinds(b, detail::all_device_kinds);
}

scsi_model::~scsi_model() {
  for (const char* b : {"scsi-xcopy", "scsi-token"}) detail::reset_discovered_kinds(b);
  detail::scsi::set_transport_factory({});
  for (auto& l : lus_)
    if (l->fd >= 0) ::close(l->fd);
}

void scsi_model::add_lu(const std::string& name, const std::string& path, std::uint64_t size_bytes,
                        std::uint32_t block_bytes) {
  auto l = std::make_unique<lu>();
  l->model = this;
  l->name = name;
  l->path = path;
  l->size_bytes = size_bytes;
  l->block_bytes = block_bytes;
  l->fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (l->fd >= 0 && ::ftruncate(l->fd, static_cast<off_t>(size_bytes)) != 0) {
    ::close(l->fd);
    l->fd = -1;
  }
  // NAA 6 (IEEE registered extended), 16 bytes, unique per LU.
  l->naa = {0x60, 0x01, 0x40, 0x50, 0xA0, 0x0D, 0xE1, 0x00, 0, 0, 0, 0, 0, 0, 0, 0};
  l->naa[15] = static_cast<std::uint8_t>(lus_.size() + 1);
  l->naa[14] = static_cast<std::uint8_t>(name.size());
  by_path_[path] = l.get();
  lus_.push_back(std::move(l));
}

void scsi_model::fail_copy_command(unsigned n, std::vector<std::uint8_t> sense, unsigned segments_before_fault) {
  fail_at_ = copy_commands_ + n;
  fail_sense_ = std::move(sense);
  fail_segments_before_ = segments_before_fault;
}

void scsi_model::expire_tokens() {
  for (auto& [id, r] : rods_) r->expired = true;
}

std::unique_ptr<transport> scsi_model::transport_for(const std::string& path) {
  auto it = by_path_.find(path);
  if (it == by_path_.end()) return nullptr;
  return std::make_unique<model_transport>(this, it->second, it->second->name);
}

scsi_model::lu* scsi_model::by_naa(std::span<const std::uint8_t> naa) {
  for (auto& l : lus_)
    if (naa.size() >= l->naa.size() && std::equal(l->naa.begin(), l->naa.end(), naa.begin())) return l.get();
  return nullptr;
}

bool scsi_model::read_blocks(lu& l, std::uint64_t lba, std::uint64_t blocks, std::vector<std::uint8_t>& out) {
  if (lba > l.blocks() || blocks > l.blocks() - lba) return false;
  const std::size_t old = out.size();
  out.resize(old + blocks * l.block_bytes);
  return ::pread(l.fd, out.data() + old, blocks * l.block_bytes, static_cast<off_t>(lba * l.block_bytes)) ==
         static_cast<ssize_t>(blocks * l.block_bytes);
}

bool scsi_model::write_blocks(lu& l, std::uint64_t lba, const std::uint8_t* data, std::uint64_t blocks) {
  if (lba > l.blocks() || blocks > l.blocks() - lba) return false;
  return ::pwrite(l.fd, data, blocks * l.block_bytes, static_cast<off_t>(lba * l.block_bytes)) ==
         static_cast<ssize_t>(blocks * l.block_bytes);
}

bool scsi_model::fault_now(unsigned& segments_before) {
  ++copy_commands_;
  if (fail_at_ != 0 && copy_commands_ == fail_at_) {
    segments_before = fail_segments_before_;
    return true;
  }
  return false;
}

scsi_reply scsi_model::execute(lu& l, std::span<const std::uint8_t> cdb, data_direction dir,
                               std::span<std::uint8_t> data) {
  if (cdb.empty()) return illegal(0x20, 0x00);
  const std::uint8_t op = cdb[0];
  const std::uint8_t sa = cdb.size() > 1 ? (cdb[1] & 0x1F) : 0;
  if (op == INQUIRY && cdb.size() == 6) {
    const bool evpd = cdb[1] & 1;
    std::vector<std::uint8_t> r;
    if (!evpd) {
      r.assign(36, ' ');
      r[0] = 0;
      r[1] = 0;
      r[2] = 6;
      r[3] = 2;
      r[4] = 31;
      r[5] = cfg_.xcopy ? 0x08 : 0;  // 3PC
      r[6] = r[7] = 0;
      std::memcpy(&r[8], "OFFCOPY SCSI MODEL      0.1 ", 28);
      return data_in(data, r);
    }
    const std::uint8_t page = cdb[2];
    r = {0, page, 0, 0};
    if (page == 0x00) {
      r.push_back(0x00);
      r.push_back(0x83);
      if (cfg_.token) r.push_back(0x8F);
    } else if (page == 0x83) {
      // A target port designator first, then the LU's NAA.
      std::vector<std::uint8_t> port = {0x61, 0x93, 0, 8, 0x50, 0x01, 0x40, 0x5F, 0xFF, 0xEE, 0xDD, 0x01};
      r.insert(r.end(), port.begin(), port.end());
      r.push_back(0x01);
      r.push_back(0x03);
      r.push_back(0);
      r.push_back(static_cast<std::uint8_t>(l.naa.size()));
      r.insert(r.end(), l.naa.begin(), l.naa.end());
    } else if (page == 0x8F && cfg_.token) {
      // Block device ROD limits (CTL scsi_vpd_tpc_descriptor_bdrl): 36 bytes.
      std::vector<std::uint8_t> rod(36, 0);
      set16(&rod[2], 32);
      set16(&rod[10], cfg_.max_range_descriptors);
      set32(&rod[12], 3600);
      set32(&rod[16], 60);
      set64(&rod[20], cfg_.max_token_transfer_blocks);
      set64(&rod[28], cfg_.optimal_transfer_blocks);
      r.insert(r.end(), rod.begin(), rod.end());
      // Supported commands (scsi_vpd_tpc_descriptor_sc): list length, then {opcode, n, SAs}.
      std::vector<std::uint8_t> cmds = {
          0x00, 0x01, 0, 0, 0, EXTENDED_COPY, 3, EC_EC_LID1, EC_PT, EC_WUT, RECEIVE_COPY_STATUS, 2, RCS_RCOP, RCS_RRTI};
      cmds[4] = static_cast<std::uint8_t>(cmds.size() - 5);
      set16(&cmds[2], cmds.size() - 4);
      r.insert(r.end(), cmds.begin(), cmds.end());
      // Supported ROD types (scsi_vpd_tpc_descriptor_srt): 4-5 reserved, 6-7 descriptors length,
      // then 64-byte scsi_vpd_tpc_descriptor_srtd {0-3 ROD type, 4 flags, 6-7 preference}.
      std::vector<std::pair<std::uint32_t, std::uint8_t>> types = {{0x00800000, 0x03}};
      if (cfg_.list_zero_rod) types.emplace_back(ROD_TYPE_BLOCK_ZERO, cfg_.zero_rod_flags);
      std::vector<std::uint8_t> srt(8 + 64 * types.size(), 0);
      set16(&srt[0], 0x0108);
      set16(&srt[2], srt.size() - 4);
      set16(&srt[6], 64 * types.size());
      for (std::size_t i = 0; i < types.size(); ++i) {
        set32(&srt[8 + 64 * i], types[i].first);
        srt[8 + 64 * i + 4] = types[i].second;
      }
      r.insert(r.end(), srt.begin(), srt.end());
    } else {
      return illegal(0x24, 0x00);
    }
    set16(&r[2], r.size() - 4);
    return data_in(data, r);
  }
  if (op == SERVICE_ACTION_IN && sa == 0x10) {  // READ CAPACITY(16)
    std::vector<std::uint8_t> r(32, 0);
    set64(&r[0], l.blocks() - 1);
    set32(&r[8], l.block_bytes);
    return data_in(data, r);
  }
  if (op == RECEIVE_COPY_STATUS && sa == RCS_RCOP) {
    if (!cfg_.xcopy) return illegal(0x20, 0x00);
    // scsi_receive_copy_operating_parameters_data.
    std::vector<std::uint8_t> r(46, 0);
    set32(&r[0], 42);
    r[4] = cfg_.snlid ? 1 : 0;
    set16(&r[8], cfg_.max_cscd_descriptors);
    set16(&r[10], cfg_.max_segment_descriptors);
    set32(&r[12], cfg_.max_descriptor_list_bytes);
    set32(&r[16], cfg_.max_segment_bytes);
    set16(&r[34], cfg_.max_concurrent_copies);
    r[36] = cfg_.max_concurrent_copies;
    r[37] = 9;
    r[43] = 2;
    r[44] = EC_SEG_B2B;
    r[45] = EC_CSCD_ID;
    return data_in(data, r);
  }
  if (op == EXTENDED_COPY && dir == data_direction::to_device && timeout_at_ != 0 &&
      copy_commands_ + 1 == timeout_at_ && (sa == EC_EC_LID1 || sa == EC_PT || sa == EC_WUT)) {
    ++copy_commands_;
    log_.push_back(l.name + " timeout");
    scsi_reply r;
    r.timed_out = true;
    return r;
  }
  if (op == EXTENDED_COPY && dir == data_direction::to_device) {
    // scsi_populate_token / scsi_write_using_token / scsi_extended_copy: 10-13 parameter list length.
    const std::uint32_t len = be32(&cdb[10]);
    std::span<const std::uint8_t> list(data.data(), std::min<std::size_t>(len, data.size()));
    if (sa == EC_EC_LID1 && cfg_.xcopy) return xcopy(l, list);
    if (sa == EC_PT && cfg_.token) return populate(l, be32(&cdb[6]), list);
    if (sa == EC_WUT && cfg_.token) return write_using_token(l, be32(&cdb[6]), list);
    char what[32];
    std::snprintf(what, sizeof what, " 0x%02x/0x%02x invalid-opcode", op, sa);
    log_.push_back(l.name + what);
    return illegal(0x20, 0x00);
  }
  if (op == RECEIVE_COPY_STATUS && sa == RCS_RCS_LID1 && cfg_.copy_status_lid1) {
    // scsi_receive_copy_status_lid1: list identifier in byte 2.
    log_.push_back(l.name + " RCS id=" + std::to_string(cdb[2]));
    auto it = l.lid1_status.find(cdb[2]);
    if (it == l.lid1_status.end()) return illegal(0x24, 0x00);
    // scsi_receive_copy_status_lid1_data: 0-3 available data, 4 status, 5-6 segments processed,
    // 7 transfer count units, 8-11 transfer count.
    std::vector<std::uint8_t> r(12, 0);
    set32(&r[0], 8);
    r[4] = it->second.status;
    set16(&r[5], it->second.segments_processed);
    r[7] = cfg_.lid1_transfer_units;
    set32(&r[8], count_in_units(it->second.transfer_blocks, l.block_bytes, cfg_.lid1_transfer_units));
    return data_in(data, r);
  }
  if (op == RECEIVE_COPY_STATUS && sa == RCS_RRTI && cfg_.token) return rrti(l, be32(&cdb[2]), data);
  return illegal(0x20, 0x00);
}

scsi_reply scsi_model::xcopy(lu& l, std::span<const std::uint8_t> p) {
  // scsi_extended_copy_lid1_data: 0 list id, 1 flags (list id usage bits 4-3), 2-3 CSCD list
  // length, 8-11 segment list length, 12-15 inline data length, 16.. descriptors.
  if (p.size() < 16) return illegal(0x1A, 0x00);
  const std::uint8_t list_id = p[0];
  const std::uint8_t usage = (p[1] >> 3) & 3;
  const std::size_t cscd_len = be16(&p[2]);
  const std::size_t seg_len = be32(&p[8]);
  std::string entry = l.name + " XCOPY id=" + std::to_string(list_id) + " usage=" + std::to_string(usage);
  if (16 + cscd_len + seg_len > p.size()) return illegal(0x1A, 0x00);
  if (cscd_len + seg_len > cfg_.max_descriptor_list_bytes) return illegal(0x1A, 0x00);
  if (cscd_len % 32 != 0) return illegal(0x26, 0x07);
  if (cscd_len / 32 > cfg_.max_cscd_descriptors) return illegal(0x26, 0x06);
  if (seg_len / 28 > cfg_.max_segment_descriptors) return illegal(0x26, 0x08);
  if (usage == EC_LIST_ID_USAGE_NONE && !cfg_.snlid) return illegal(0x26, 0x02);
  if (usage != EC_LIST_ID_USAGE_NONE && busy_list_ids_ > 0) {
    --busy_list_ids_;
    log_.push_back(entry + " busy");
    return illegal(0x00, 0x16);
  }
  // scsi_ec_cscd_id (32 bytes): 0 type 0xE4, 4 code set, 5 id type (bits 3-0, 3 = NAA), 7 length,
  // 8-27 designator, 28-31 device type specific (29-31 disk block length).
  std::vector<lu*> cscds;
  for (std::size_t off = 16; off < 16 + cscd_len; off += 32) {
    if (p[off] != EC_CSCD_ID) return illegal(0x26, 0x07);
    if ((p[off + 5] & 0x0F) != 3) return copy_aborted();
    lu* t = by_naa(p.subspan(off + 8, std::min<std::size_t>(p[off + 7], 20)));
    if (t == nullptr) return copy_aborted();
    const std::uint32_t dbl = (std::uint32_t{p[off + 29]} << 16) | (std::uint32_t{p[off + 30]} << 8) | p[off + 31];
    if (dbl != t->block_bytes) return illegal(0x26, 0x00);
    cscds.push_back(t);
  }
  struct seg {
    lu* src;
    lu* dst;
    std::uint64_t s, d, n;
  };
  std::vector<seg> segs;
  bool local = false;
  // scsi_ec_segment_b2b (28 bytes): 0 type 0x02, 2-3 descriptor length, 4-5 source CSCD,
  // 6-7 destination CSCD, 10-11 number of blocks, 12-19 source LBA, 20-27 destination LBA.
  for (std::size_t off = 16 + cscd_len; off < 16 + cscd_len + seg_len; off += 28) {
    if (p[off] != EC_SEG_B2B) return illegal(0x26, 0x09);
    if (be16(&p[off + 2]) != 0x18) return illegal(0x26, 0x00);
    const std::uint16_t si = be16(&p[off + 4]), di = be16(&p[off + 6]);
    if (si >= cscds.size() || di >= cscds.size()) return illegal(0x26, 0x00);
    seg s{cscds[si], cscds[di], be64(&p[off + 12]), be64(&p[off + 20]), be16(&p[off + 10])};
    if (s.src->block_bytes != s.dst->block_bytes) return illegal(0x26, 0x00);
    if (s.n * s.src->block_bytes > cfg_.max_segment_bytes) return illegal(0x26, 0x00);
    if (s.src == &l || s.dst == &l) local = true;
    segs.push_back(s);
    entry += " " + seg_text(s.s, s.d, s.n);
  }
  log_.push_back(entry);
  if (!local && !segs.empty()) return copy_aborted();  // LIO: the receiving LU must be an end
  unsigned before = 0;
  const bool fault = fault_now(before);
  const bool held = usage != EC_LIST_ID_USAGE_NONE && cfg_.copy_status_lid1;
  std::uint64_t written = 0;  // blocks, for the LID1 transfer count (CTL: curbytes)
  for (std::size_t i = 0; i < segs.size(); ++i) {
    if (fault && i >= before) {
      // The failing segment may have written a part before the error.
      const std::uint64_t part = std::min<std::uint64_t>(cfg_.fault_partial_blocks, segs[i].n);
      if (part > 0) {
        std::vector<std::uint8_t> buf;
        if (read_blocks(*segs[i].src, segs[i].s, part, buf)) write_blocks(*segs[i].dst, segs[i].d, buf.data(), part);
        written += part;
      }
      const auto processed = static_cast<std::uint16_t>(cfg_.lid1_counts_failed_segment ? i + 1 : i);
      if (held) l.lid1_status[list_id] = {0x02, processed, written};
      return check_with(fail_sense_);
    }
    std::vector<std::uint8_t> buf;
    if (!read_blocks(*segs[i].src, segs[i].s, segs[i].n, buf)) return copy_aborted();
    if (!write_blocks(*segs[i].dst, segs[i].d, buf.data(), segs[i].n)) return copy_aborted();
    written += segs[i].n;
  }
  if (fault) {
    if (held) l.lid1_status[list_id] = {0x02, static_cast<std::uint16_t>(segs.size()), written};
    return check_with(fail_sense_);
  }
  if (held) l.lid1_status[list_id] = {0x01, static_cast<std::uint16_t>(segs.size()), written};
  return {};
}

scsi_reply scsi_model::populate(lu& l, std::uint32_t list_id, std::span<const std::uint8_t> p) {
  // scsi_populate_token_data: 0-1 length, 2 flags (IMMED 0x01, RTV 0x02), 4-7 inactivity timeout,
  // 8-11 ROD type, 14-15 range descriptor length, 16.. scsi_range_desc {0-7 LBA, 8-11 length}.
  if (p.size() < 16) return illegal(0x1A, 0x00);
  const std::size_t list_len = be16(&p[14]);
  if (16 + list_len > p.size() || list_len % 16 != 0) return illegal(0x26, 0x00);
  const bool immed = p[2] & EC_PT_IMMED;
  std::string entry = l.name + " PT id=" + std::to_string(list_id) + (immed ? " immed" : "");
  if (list_len / 16 > cfg_.max_range_descriptors) {
    log_.push_back(entry + " too-many");
    return illegal(0x26, 0x08);
  }
  auto r = std::make_shared<rod>();
  r->block_bytes = l.block_bytes;
  std::uint64_t total = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (std::size_t off = 16; off < 16 + list_len; off += 16) {
    ranges.emplace_back(be64(&p[off]), be32(&p[off + 8]));
    total += ranges.back().second;
    entry += " " + std::to_string(ranges.back().first) + "x" + std::to_string(ranges.back().second);
  }
  log_.push_back(entry);
  if (total > cfg_.max_token_transfer_blocks) return illegal(0x26, 0x00);
  unsigned before = 0;
  if (fault_now(before)) return check_with(fail_sense_);
  for (auto [lba, n] : ranges)
    if (!read_blocks(l, lba, n, r->data)) return illegal(0x21, 0x00);
  auto st = std::make_shared<op_status>();
  st->service_action = EC_PT;
  st->transfer_blocks = total;
  if (cfg_.populate_max_blocks != 0 && total > cfg_.populate_max_blocks) {
    // The array caps the token: it represents the first blocks only.
    r->data.resize(cfg_.populate_max_blocks * l.block_bytes);
    st->transfer_blocks = cfg_.populate_max_blocks;
    st->copy_status = cfg_.populate_short_status;
  }
  r->id = next_rod_++;
  rods_[r->id] = r;
  // scsi_token: 0-3 ROD type, 6-7 length (0x01F8), then the body; the model keeps its ROD id in
  // body bytes 0-7 (token 8-15) and the creator's NAA at token 16.
  st->token.assign(512, 0);
  set32(&st->token[0], 0x00800000);  // ROD type: point in time copy, default
  set16(&st->token[6], 512 - 8);
  set64(&st->token[8], r->id);
  std::memcpy(&st->token[16], l.naa.data(), l.naa.size());
  st->polls_left = immed ? cfg_.in_progress_polls : 0;
  l.status_by_list_id[list_id] = st;
  return {};
}

scsi_reply scsi_model::write_using_token(lu& l, std::uint32_t list_id, std::span<const std::uint8_t> p) {
  // scsi_write_using_token_data: 0-1 length, 2 flags (IMMED 0x01, DEL_TKN 0x02), 8-15 offset
  // into ROD, 16-527 ROD token, 534-535 range descriptor length, 536.. scsi_range_desc.
  if (p.size() < 536) return illegal(0x1A, 0x00);
  const bool immed = p[2] & EC_WUT_IMMED;
  const bool del_tkn = p[2] & EC_WUT_DEL_TKN;
  const std::uint64_t offset = be64(&p[8]);
  const std::uint8_t* token = &p[16];
  const std::size_t list_len = be16(&p[534]);
  if (536 + list_len > p.size() || list_len % 16 != 0) return illegal(0x26, 0x00);
  std::string entry = l.name + " WUT id=" + std::to_string(list_id) + (immed ? " immed" : "") +
                      (del_tkn ? " del" : "") + " off=" + std::to_string(offset);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  std::uint64_t total = 0;
  for (std::size_t off = 536; off < 536 + list_len; off += 16) {
    ranges.emplace_back(be64(&p[off]), be32(&p[off + 8]));
    total += ranges.back().second;
    entry += " " + std::to_string(ranges.back().first) + "x" + std::to_string(ranges.back().second);
  }
  log_.push_back(entry);
  if (list_len / 16 > cfg_.max_range_descriptors) return illegal(0x26, 0x08);
  const bool zero = be32(token) == ROD_TYPE_BLOCK_ZERO;
  std::shared_ptr<rod> r;
  if (!zero) {
    auto it = rods_.find(be64(token + 8));
    if (it == rods_.end()) return illegal(0x23, 0x04);  // INVALID TOKEN OPERATION, UNSUPPORTED TOKEN TYPE
    r = it->second;
    if (r->expired) return illegal(0x23, 0x07);  // INVALID TOKEN OPERATION, TOKEN EXPIRED
    if (cfg_.token_lifetime_writes != 0 && r->writes >= cfg_.token_lifetime_writes) {
      r->expired = true;
      return illegal(0x23, 0x07);
    }
    ++r->writes;
    // DEL_TKN: CTL's ctl_write_using_token zeroes the token's timeout, so it is freed once this
    // command ends, whatever the outcome. The model frees it now (the command runs to its end
    // inside this call).
    if (del_tkn && cfg_.honour_del_tkn) rods_.erase(it);
    if (r->block_bytes != l.block_bytes) return illegal(0x23, 0x00);
  }
  unsigned before = 0;
  const bool fault = fault_now(before);
  std::uint64_t budget = total;
  if (cfg_.write_using_token_max_blocks != 0) budget = std::min(budget, cfg_.write_using_token_max_blocks);
  std::uint64_t moved = 0;
  std::uint64_t rod_pos = offset;
  auto st = std::make_shared<op_status>();
  st->service_action = EC_WUT;
  for (std::size_t i = 0; i < ranges.size() && moved < budget; ++i) {
    if (fault && i >= before) break;
    std::uint64_t n = std::min(ranges[i].second, budget - moved);
    bool rod_ends = false;
    if (!zero) {
      // The ROD runs out: write what it holds, then fail as CTL's tpc_process_wut does (INVALID
      // FIELD IN PARAMETER LIST once the token's ranges are used up), transfer count = blocks moved.
      const std::uint64_t rod_blocks = r->data.size() / l.block_bytes;
      const std::uint64_t left = rod_pos < rod_blocks ? rod_blocks - rod_pos : 0;
      if (n > left) {
        n = left;
        rod_ends = true;
      }
    }
    std::vector<std::uint8_t> buf(n * l.block_bytes, 0);
    if (!zero && n > 0) std::memcpy(buf.data(), r->data.data() + rod_pos * l.block_bytes, buf.size());
    if (n > 0 && !write_blocks(l, ranges[i].first, buf.data(), n)) {
      st->copy_status = CCS_ERROR;
      st->transfer_blocks = moved;
      st->sense = fixed_sense(KEY_ILLEGAL_REQUEST, 0x21, 0x00);
      l.status_by_list_id[list_id] = st;
      return illegal(0x21, 0x00);
    }
    moved += n;
    rod_pos += n;
    if (rod_ends) {
      st->copy_status = CCS_ERROR;
      st->transfer_blocks = moved;
      st->sense = fixed_sense(KEY_ILLEGAL_REQUEST, 0x26, 0x00);
      l.status_by_list_id[list_id] = st;
      return illegal(0x26, 0x00);
    }
  }
  st->transfer_blocks = moved;
  st->polls_left = immed ? cfg_.in_progress_polls : 0;
  if (fault) {
    st->copy_status = CCS_ERROR;
    st->sense = fail_sense_;
    l.status_by_list_id[list_id] = st;
    return check_with(fail_sense_);
  }
  st->copy_status = moved < total ? cfg_.short_write_status : CCS_COMPLETED;
  l.status_by_list_id[list_id] = st;
  return {};
}

scsi_reply scsi_model::rrti(lu& l, std::uint32_t list_id, std::span<std::uint8_t> out) {
  log_.push_back(l.name + " RRTI id=" + std::to_string(list_id));
  auto it = l.status_by_list_id.find(list_id);
  if (it == l.status_by_list_id.end()) return illegal(0x24, 0x00);
  auto& st = *it->second;
  // scsi_receive_copy_status_lid4_data: 0-3 available data, 4 response to service action,
  // 5 copy operation status, 6-7 operation counter, 8-11 estimated status update delay,
  // 13 sense data field length, 14 sense data length, 15 transfer count units, 16-23 transfer
  // count, 24-25 segments processed, 32.. sense; then (ctl_receive_rod_token_information) 4 bytes
  // ROD token descriptors length, 2 reserved, the token.
  std::vector<std::uint8_t> r(32, 0);
  r[4] = st.service_action;
  if (st.polls_left > 0) {
    --st.polls_left;
    r[5] = cfg_.in_progress_status;
    set32(&r[8], 1);
    set32(&r[0], r.size() - 4);
    return data_in(out, r);
  }
  r[5] = st.copy_status;
  r[15] = cfg_.transfer_count_units;
  set64(&r[16], count_in_units(st.transfer_blocks, l.block_bytes, cfg_.transfer_count_units));
  r[13] = static_cast<std::uint8_t>(st.sense.size());
  r[14] = static_cast<std::uint8_t>(st.sense.size());
  r.insert(r.end(), st.sense.begin(), st.sense.end());
  if (!st.token.empty()) {
    std::uint8_t len[6] = {};
    set32(len, 2 + st.token.size());
    r.insert(r.end(), len, len + 6);
    r.insert(r.end(), st.token.begin(), st.token.end());
  }
  set32(&r[0], r.size() - 4);
  return data_in(out, r);
}

}  // namespace offcopy::test
