// Golden byte vectors for every SCSI CDB, parameter list and range descriptor we send, and literal
// device replies for every parser. Each vector is written by hand from a reference
// implementation's field offsets, never produced by our encoder:
//   - CDBs: FreeBSD CTL sys/cam/scsi/scsi_all.h (struct scsi_extended_copy, scsi_populate_token,
//     scsi_write_using_token, scsi_receive_rod_token_information, scsi_receive_copy_status_lid1,
//     scsi_receive_copy_operating_parameters, scsi_read_capacity_16, scsi_inquiry) and libiscsi
//     lib/scsi-lowlevel.c (scsi_cdb_extended_copy, scsi_cdb_receive_copy_results,
//     scsi_cdb_inquiry, scsi_cdb_serviceactionin16);
//   - EXTENDED COPY(LID1) list: CTL scsi_extended_copy_lid1_data / scsi_ec_cscd_id /
//     scsi_ec_segment_b2b and libiscsi test-tool/iscsi-support.c (populate_param_header,
//     populate_tgt_desc, populate_seg_desc_b2b);
//   - POPULATE TOKEN / WRITE USING TOKEN lists and range descriptors: CTL
//     scsi_populate_token_data / scsi_write_using_token_data / scsi_range_desc and QNAP's LIO ODX
//     drivers/target/tpc_def.h (populate_token_param, write_by_token_param, blk_dev_range_desc,
//     byte offsets in its comments); the zero ROD token: CTL struct scsi_token + ROD_TYPE_BLOCK_ZERO;
//   - replies: CTL's ctl_tpc.c writers (RCOP, RECEIVE COPY STATUS(LID1), RRTI, VPD 0x8F) and
//     sg3_utils src/sg_copy_results.c / src/sg_vpd_common.c readers.
#include <doctest/doctest.h>

#include <string_view>
#include <vector>

#include "src/scsi/wire.hpp"
#include "tests/unit/hex.hpp"

using namespace offcopy::detail::scsi;
using bytes = std::vector<std::uint8_t>;
using offcopy::test_hex::hex;

namespace {
bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
bytes zeros(std::size_t n) { return bytes(n, 0); }
template <std::size_t N>
bytes as_bytes(const std::array<std::uint8_t, N>& a) {
  return bytes(a.begin(), a.end());
}
bytes naa16() { return hex("60 01 40 5a bc de f0 12 34 56 78 9a bc de f0 11"); }
}  // namespace

TEST_CASE("CDBs: golden vectors") {
  // scsi_extended_copy: 0 opcode 83h, 1 service action, 2-9 reserved, 10-13 length, 15 control.
  CHECK(as_bytes(extended_copy_lid1_cdb(0x12345678)) == hex("83 00 00 00 00 00 00 00 00 00 12 34 56 78 00 00"));
  // scsi_receive_copy_operating_parameters: SA 03h, 10-13 allocation length.
  CHECK(as_bytes(receive_copy_operating_parameters_cdb(1024)) ==
        hex("84 03 00 00 00 00 00 00 00 00 00 00 04 00 00 00"));
  // scsi_receive_copy_status_lid1: SA 00h, 2 list identifier, 10-13 length.
  CHECK(as_bytes(receive_copy_status_lid1_cdb(0x5A, 12)) == hex("84 00 5a 00 00 00 00 00 00 00 00 00 00 0c 00 00"));
  // scsi_populate_token: SA 10h, 2-5 reserved, 6-9 list identifier, 10-13 length, 14 group.
  CHECK(as_bytes(populate_token_cdb(0xA1B2C3D4, 48)) == hex("83 10 00 00 00 00 a1 b2 c3 d4 00 00 00 30 00 00"));
  // scsi_write_using_token: SA 11h, same layout.
  CHECK(as_bytes(write_using_token_cdb(7, 552)) == hex("83 11 00 00 00 00 00 00 00 07 00 00 02 28 00 00"));
  // scsi_receive_rod_token_information: SA 07h, 2-5 list identifier, 10-13 length.
  CHECK(as_bytes(receive_rod_token_information_cdb(0x01020304, 0x400)) ==
        hex("84 07 01 02 03 04 00 00 00 00 00 00 04 00 00 00"));
  // scsi_read_capacity_16 (SERVICE ACTION IN 9Eh, SA 10h), 10-13 allocation length.
  CHECK(as_bytes(read_capacity16_cdb(32)) == hex("9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00"));
  // scsi_inquiry: 1 bit 0 EVPD, 2 page code, 3-4 allocation length.
  CHECK(as_bytes(inquiry_cdb(true, 0x83, 0x200)) == hex("12 01 83 02 00 00"));
  CHECK(as_bytes(inquiry_cdb(false, 0x83, 36)) == hex("12 00 00 00 24 00"));
}

TEST_CASE("EXTENDED COPY LID1 list: golden vector, two 0xE4 CSCDs and two 0x02 segments") {
  std::vector<cscd_identification> cscds = {{naa16(), 512, 0}, {hex("50 01 02 03 04 05 06 07"), 512, 0}};
  std::vector<block_segment> segs = {{0, 1, 0xFFFF, 0x0102030405060708ULL, 0x1112131415161718ULL}, {0, 1, 8, 100, 200}};
  const bytes expected = cat({
      // Header: 0 list id, 1 list id usage 10b (bits 4-3) | priority 1, 2-3 CSCD list length 64,
      // 4-7 reserved, 8-11 segment list length 56, 12-15 inline data length 0.
      hex("42 11 00 40 00 00 00 00 00 00 00 38 00 00 00 00"),
      // CSCD 0: E4h, 1 peripheral type 0, 2-3 relative initiator port, 4 code set 1 (binary),
      // 5 association LU | designator type 3 (NAA), 6 reserved, 7 designator length 16,
      // 8-27 designator zero padded, 28 PAD 0, 29-31 disk block length 512.
      hex("e4 00 00 00 01 03 00 10"),
      naa16(),
      zeros(4),
      hex("00 00 02 00"),
      // CSCD 1: an 8-byte NAA.
      hex("e4 00 00 00 01 03 00 08 50 01 02 03 04 05 06 07"),
      zeros(12),
      hex("00 00 02 00"),
      // Segment 0: 02h, 1 DC 0 / CAT 0, 2-3 descriptor length 18h, 4-5 source CSCD 0, 6-7
      // destination CSCD 1, 8-9 reserved, 10-11 blocks FFFFh, 12-19 source LBA, 20-27 destination LBA.
      hex("02 00 00 18 00 00 00 01 00 00 ff ff 01 02 03 04 05 06 07 08 11 12 13 14 15 16 17 18"),
      hex("02 00 00 18 00 00 00 01 00 00 00 08 00 00 00 00 00 00 00 64 00 00 00 00 00 00 00 c8"),
  });
  CHECK(encode_extended_copy_lid1(0x42, list_id_usage::discard, cscds, segs) == expected);
}

TEST_CASE("EXTENDED COPY LID1 list: golden vectors, no list id and hold usages, one CSCD") {
  std::vector<cscd_identification> one = {{naa16(), 4096, 0}};
  std::vector<block_segment> segs = {{0, 0, 1, 0, 10}};
  const bytes cscd = cat({hex("e4 00 00 00 01 03 00 10"), naa16(), zeros(4), hex("00 00 10 00")});
  const bytes seg = hex("02 00 00 18 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 0a");
  // Usage 11b (no list id): list id 0 whatever the caller passed.
  CHECK(encode_extended_copy_lid1(0x99, list_id_usage::none, one, segs) ==
        cat({hex("00 19 00 20 00 00 00 00 00 00 00 1c 00 00 00 00"), cscd, seg}));
  // Usage 00b (hold).
  CHECK(encode_extended_copy_lid1(3, list_id_usage::hold, one, segs) ==
        cat({hex("03 01 00 20 00 00 00 00 00 00 00 1c 00 00 00 00"), cscd, seg}));
}

TEST_CASE("RECEIVE COPY OPERATING PARAMETERS: LIO's answer as a literal reply") {
  // scsi_receive_copy_operating_parameters_data: 0-3 length, 4 SNLID, 8-9 max CSCDs, 10-11 max
  // segments, 12-15 max descriptor list length, 16-19 max segment length, 20-23 max inline data,
  // 24-27 held data limit, 28-31 stream transfer size, 34-35 total concurrent copies, 36 max
  // concurrent copies, 37 data segment granularity, 43 implemented descriptor list length, 44.. codes.
  bytes d =
      hex("00 00 00 2a 01 00 00 00 00 02 00 01 00 00 04 00 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
          "00 00 00 01 01 09 00 00 00 00 00 02 02 e4");
  auto p = parse_copy_operating_parameters(d);
  REQUIRE(p);
  CHECK(p->snlid);
  CHECK(p->max_cscd_descriptors == 2);
  CHECK(p->max_segment_descriptors == 1);
  CHECK(p->max_descriptor_list_bytes == 1024);
  CHECK(p->max_segment_bytes == 256u << 20);
  CHECK(p->total_concurrent_copies == 1);
  CHECK(p->max_concurrent_copies == 1);
  CHECK(p->data_segment_granularity_log2 == 9);
  CHECK(p->descriptor_codes == bytes{0x02, 0xE4});
  CHECK(p->supports_descriptor(0xE4));
  CHECK_FALSE(p->supports_descriptor(0x0A));
  // Short or lying replies.
  CHECK_FALSE(parse_copy_operating_parameters(bytes(43, 0)));
  d[43] = 200;  // more codes than the reply holds
  auto q = parse_copy_operating_parameters(d);
  REQUIRE(q);
  CHECK(q->descriptor_codes.size() == 2);
}

TEST_CASE("RECEIVE COPY STATUS(LID1): a literal reply") {
  // scsi_receive_copy_status_lid1_data (sg3_utils sg_copy_results prints the same fields):
  // 0-3 available data 8, 4 HDD | status 02h, 5-6 segments processed 3, 7 units 02h (MiB),
  // 8-11 transfer count 5.
  auto st = parse_copy_status_lid1(hex("00 00 00 08 82 00 03 02 00 00 00 05"));
  REQUIRE(st);
  CHECK(st->copy_status == lid1_completed_with_errors);
  CHECK(st->segments_processed == 3);
  CHECK(st->transfer_count_units == 0x02);
  CHECK(st->transfer_count == 5);
  CHECK_FALSE(parse_copy_status_lid1(bytes(11, 0)));
}

TEST_CASE("VPD 0x83: the LU's NAA, not the port's or the target's") {
  // Designation descriptors: 0 code set, 1 association (bits 5-4) | designator type (3-0),
  // 3 length (CTL struct scsi_vpd_id_descriptor).
  const bytes page = cat({
      hex("00 83 00 38"), hex("02 01 00 08"), bytes{'L', 'I', 'O', '-', 'O', 'R', 'G', ' '},  // T10 vendor id, ASCII
      hex("01 13 00 08 51 02 03 04 05 06 07 08"),  // NAA, target port association
      hex("01 03 00 10"), naa16(),                 // NAA, LU association
      hex("01 03 00 08 52 09 09 09 09 09 09 09"),  // shorter NAA, LU
  });
  REQUIRE(page.size() == 4 + 0x38);
  auto naa = parse_vpd83_lu_naa(page);
  REQUIRE(naa);
  CHECK(*naa == naa16());
  // Truncated: the LU designator's length runs past the end.
  bytes cut(page.begin(), page.begin() + 4 + 12 + 12 + 10);
  cut[3] = static_cast<std::uint8_t>(cut.size() - 4);
  CHECK_FALSE(parse_vpd83_lu_naa(cut));
  CHECK_FALSE(parse_vpd83_lu_naa(bytes{0, 0x80, 0, 0}));
}

TEST_CASE("VPD 0x8F: ROD token limits, supported commands, general copy operations") {
  // CTL ctl_inquiry_evpd_tpc / scsi_vpd_tpc_descriptor_bdrl (36 bytes: 10-11 max ranges, 12-15 max
  // inactivity timeout, 16-19 default timeout, 20-27 max token transfer size, 28-35 optimal
  // transfer count), _sc (4 list length, then opcode, SA count, SAs), _gco (12-15 max segment
  // length); sg3_utils decode_3party_copy_vpd reads the same offsets.
  const bytes page = cat({
      hex("00 8f 00 55"),
      hex("00 00 00 20 00 00 00 00 00 00 00 08 00 00 02 58 00 00 00 1e"
          "00 00 00 00 00 01 00 00 00 00 00 00 00 00 08 00"),
      hex("00 01 00 09 08 83 02 10 11 84 02 03 07"),
      hex("80 01 00 20 00 00 00 00 00 00 00 00 00 10 00 00 00 00 00 00"
          "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
  });
  REQUIRE(page.size() == 4 + 0x55);
  auto v = parse_vpd8f(page);
  REQUIRE(v);
  REQUIRE(v->rod_limits);
  CHECK(v->rod_limits->max_range_descriptors == 8);
  CHECK(v->rod_limits->max_inactivity_timeout_s == 600);
  CHECK(v->rod_limits->default_inactivity_timeout_s == 30);
  CHECK(v->rod_limits->max_token_transfer_blocks == 0x10000);
  CHECK(v->rod_limits->optimal_transfer_blocks == 0x800);
  CHECK(v->supports(0x83, 0x10));
  CHECK(v->supports(0x83, 0x11));
  CHECK(v->supports(0x84, 0x07));
  CHECK_FALSE(v->supports(0x83, 0x01));
  REQUIRE(v->max_segment_bytes);
  CHECK(*v->max_segment_bytes == 1u << 20);
  CHECK(v->descriptor_types == std::vector<std::uint16_t>{0x0000, 0x0001, 0x8001});
  CHECK(v->rod_types.empty());
  // A descriptor that claims more than the page holds ends the walk without reading past it.
  bytes bad = page;
  bad[4 + 2] = 0xFF;
  bad[4 + 3] = 0xF0;
  auto w = parse_vpd8f(bad);
  REQUIRE(w);
  CHECK_FALSE(w->rod_limits);
  CHECK_FALSE(parse_vpd8f(bytes{0, 0x8F, 0}));
}

TEST_CASE("POPULATE TOKEN list and range descriptors: golden vectors") {
  // 0-1 data length (n-1: total - 2), 2 flags (IMMED 01h, RTV 02h), 3 reserved, 4-7 inactivity
  // timeout, 8-11 ROD type, 12-13 reserved, 14-15 range descriptor list length, 16.. range
  // descriptors {0-7 LBA, 8-11 number of blocks, 12-15 reserved}.
  std::vector<block_range> r = {{0x0102030405060708ULL, 0x11223344}, {16, 8}};
  const bytes ranges =
      hex("01 02 03 04 05 06 07 08 11 22 33 44 00 00 00 00"
          "00 00 00 00 00 00 00 10 00 00 00 08 00 00 00 00");
  CHECK(encode_populate_token(r, true, 30) == cat({hex("00 2e 01 00 00 00 00 1e 00 00 00 00 00 00 00 20"), ranges}));
  // RTV with the block device zero ROD type FFFF0001h.
  CHECK(encode_populate_token(r, false, 0, rod_type_zero) ==
        cat({hex("00 2e 02 00 00 00 00 00 ff ff 00 01 00 00 00 20"), ranges}));
}

TEST_CASE("WRITE USING TOKEN list: golden vector, token at 16-527, range list length at 534-535") {
  // 0-1 data length, 2 flags (DEL_TKN 02h, IMMED 01h), 3-7 reserved, 8-15 offset into ROD,
  // 16-527 ROD token, 528-533 reserved, 534-535 range descriptor list length, 536.. ranges.
  // (ddpt 0.97 writes 534-535 one byte early; CTL and QNAP agree on these offsets.)
  bytes token(512);
  for (std::size_t i = 0; i < token.size(); ++i) token[i] = static_cast<std::uint8_t>(i * 7 + 1);
  std::vector<block_range> r = {{1000, 24}};
  const bytes tail = cat({zeros(6), hex("00 10 00 00 00 00 00 00 03 e8 00 00 00 18 00 00 00 00")});
  CHECK(encode_write_using_token(token, 0x0A0B, r, true) ==
        cat({hex("02 26 01 00 00 00 00 00 00 00 00 00 00 00 0a 0b"), token, tail}));
  CHECK(encode_write_using_token(token, 0x0A0B, r, false, true) ==
        cat({hex("02 26 02 00 00 00 00 00 00 00 00 00 00 00 0a 0b"), token, tail}));
  CHECK(encode_write_using_token(token, 0, r, true, true) ==
        cat({hex("02 26 03 00 00 00 00 00 00 00 00 00 00 00 00 00"), token, tail}));
}

TEST_CASE("block device zero ROD token: golden vector") {
  // struct scsi_token: 0-3 ROD type FFFF0001h, 4-5 reserved, 6-7 ROD token length 01F8h.
  CHECK(as_bytes(zero_rod_token()) == cat({hex("ff ff 00 01 00 00 01 f8"), zeros(504)}));
}

TEST_CASE("RECEIVE ROD TOKEN INFORMATION: a literal reply with sense and token") {
  // As ctl_receive_rod_token_information writes it: 0-3 available data, 4 response to service
  // action, 5 copy operation status, 6-7 operation counter, 8-11 estimated status update delay,
  // 13 sense data field length, 14 sense data length, 15 transfer count units, 16-23 transfer
  // count, 24-25 segments processed, 32.. sense; 4 bytes ROD token descriptors length, 2
  // reserved, the token.
  const bytes sense = hex("70 00 0a 00 00 00 00 0a 00 00 00 00 0d 02 00 00 00 00");
  bytes token(512);
  for (int i = 0; i < 512; ++i) token[i] = static_cast<std::uint8_t>(i);
  const bytes d =
      cat({hex("00 00 02 34 10 01 00 01 00 00 00 05 00 12 12 f1 00 00 00 00 00 00 10 00 00 00 00 00 00 00 00 00"),
           sense, hex("00 00 02 02 00 00"), token});
  REQUIRE(d.size() == 4 + 0x234);
  auto r = parse_rod_token_information(d);
  REQUIRE(r);
  CHECK(r->response_to_service_action == 0x10);
  CHECK(r->copy_status == copy_op_completed);
  CHECK(r->operation_counter == 1);
  CHECK(r->status_update_delay_ms == 5);
  CHECK(r->transfer_count_units == 0xF1);
  CHECK(r->transfer_count == 4096);
  CHECK(r->sense == sense);
  CHECK(r->token == token);
  // Without a token, in progress (11h).
  auto q = parse_rod_token_information(
      hex("00 00 00 1c 11 11 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"));
  REQUIRE(q);
  CHECK(q->in_progress());
  CHECK(q->token.empty());
  CHECK_FALSE(parse_rod_token_information(bytes(31, 0)));
}

TEST_CASE("sense: fixed and descriptor formats, information field, classification") {
  auto f = parse_sense(make_fixed_sense(0x05, 0x26, 0x08, 7));
  REQUIRE(f);
  CHECK(f->sense_key == 5);
  CHECK(f->asc == 0x26);
  CHECK(f->ascq == 0x08);
  CHECK(f->information_valid);
  CHECK(f->information == 7);
  CHECK(classify_sense(*f) == sense_meaning::size_limit_exceeded);
  bytes desc = {0x72, 0x0A, 0x0D, 0x02, 0, 0, 0, 12, 0x00, 0x0A, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34};
  auto g = parse_sense(desc);
  REQUIRE(g);
  CHECK(g->sense_key == 0x0A);
  CHECK(g->asc == 0x0D);
  CHECK(g->information_valid);
  CHECK(g->information == 0x1234);
  CHECK(classify_sense(*g) == sense_meaning::device_error);
  auto meaning = [](std::uint8_t k, std::uint8_t a, std::uint8_t q) {
    return classify_sense(*parse_sense(make_fixed_sense(k, a, q)));
  };
  CHECK(meaning(0x05, 0x20, 0x00) == sense_meaning::not_supported);
  CHECK(meaning(0x05, 0x26, 0x09) == sense_meaning::not_supported);
  CHECK(meaning(0x05, 0x26, 0x06) == sense_meaning::size_limit_exceeded);
  CHECK(meaning(0x05, 0x00, 0x16) == sense_meaning::list_id_busy);
  CHECK(meaning(0x05, 0x23, 0x04) == sense_meaning::token_error);
  CHECK(meaning(0x05, 0x21, 0x00) == sense_meaning::out_of_range);
  CHECK(meaning(0x06, 0x29, 0x00) == sense_meaning::retry);
  CHECK(meaning(0x0A, 0x0D, 0x02) == sense_meaning::device_error);
  CHECK_FALSE(parse_sense(bytes{0x00, 0x00}));
  CHECK_FALSE(parse_sense(bytes{}));
}

TEST_CASE("READ CAPACITY(16) and standard INQUIRY") {
  // READ CAPACITY(16) data (CTL scsi_read_capacity_data_long): 0-7 last LBA, 8-11 block length,
  // 13 bits 3-0 logical blocks per physical block exponent.
  auto r = parse_read_capacity16(cat({hex("00 00 00 00 00 01 ff ff 00 00 02 00 00 03"), zeros(18)}));
  REQUIRE(r);
  CHECK(r->size_bytes() == 64ULL << 20);
  CHECK(r->physical_per_logical_log2 == 3);
  bytes inq(36, ' ');
  inq[0] = 0;
  inq[5] = 0x08;
  std::string v = "LIO-ORG FILEIO          4.0 ";
  std::copy(v.begin(), v.end(), inq.begin() + 8);
  auto q = parse_standard_inquiry(inq);
  REQUIRE(q);
  CHECK(q->third_party_copy);
  CHECK(q->vendor == "LIO-ORG");
  CHECK(q->product == "FILEIO");
  CHECK(q->revision == "4.0");
}

TEST_CASE("copy operation status codes: SPC-4 values as FreeBSD CTL and QNAP's LIO ODX number them") {
  // FreeBSD CTL scsi_all.h RCS_CCS_*: COMPLETED 01h, ERROR 02h, COMPLETED_PROD 03h,
  // COMPLETED_RESID 04h, INPROG_FGBG 10h, INPROG_FG 11h, INPROG_BG 12h, ABORTED 60h; QNAP
  // tpc_def.h COPY_OP_STATUS (SPC-4 r36) has the same numbers.
  CHECK(copy_op_without_errors(0x01));
  CHECK_FALSE(copy_op_without_errors(0x02));
  CHECK(copy_op_without_errors(0x03));  // partial ROD token usage
  CHECK(copy_op_without_errors(0x04));  // residual data
  CHECK_FALSE(copy_op_without_errors(0x60));
  for (std::uint8_t s : {0x10, 0x11, 0x12}) CHECK(copy_op_running(s));
  for (std::uint8_t s : {0x00, 0x01, 0x02, 0x03, 0x04, 0x13, 0x60}) CHECK_FALSE(copy_op_running(s));
  bytes d(32, 0);
  d[3] = 28;
  d[5] = 0x12;  // in progress in the background
  auto r = parse_rod_token_information(d);
  REQUIRE(r);
  CHECK(r->in_progress());
}

TEST_CASE("transfer count units: bytes, 2^10n bytes and logical blocks, rounded down, reserved codes unusable") {
  // Codes as FreeBSD CTL scsi_all.h RCS_TC_BYTES..RCS_TC_EBYTES (00h-06h) and RCS_TC_LBAS (F1h).
  CHECK(transfer_count_blocks(0x00, 1023, 512) == 1u);  // bytes: 1023 B is one whole block
  CHECK(transfer_count_blocks(0x00, 1024, 512) == 2u);
  CHECK(transfer_count_blocks(0x01, 3, 4096) == 0u);  // 3 KiB < one 4 KiB block
  CHECK(transfer_count_blocks(0x01, 750, 512) == 1500u);
  CHECK(transfer_count_blocks(0x02, 1, 512) == 2048u);         // MiB
  CHECK(transfer_count_blocks(0x03, 1, 4096) == 262144u);      // GiB
  CHECK(transfer_count_blocks(0x04, 1, 512) == (1ULL << 31));  // TiB
  CHECK(transfer_count_blocks(0x06, 1, 512) == (1ULL << 51));  // EiB
  CHECK(transfer_count_blocks(0x06, ~0ULL, 512) == ~0ULL);     // saturates, never wraps
  CHECK(transfer_count_blocks(0xF1, 77, 4096) == 77u);         // already blocks
  CHECK_FALSE(transfer_count_blocks(0x07, 1, 512));            // reserved
  CHECK_FALSE(transfer_count_blocks(0xF0, 1, 512));
  CHECK_FALSE(transfer_count_blocks(0xF2, 1, 512));
  CHECK_FALSE(transfer_count_blocks(0x00, 1024, 0));  // no block size: nothing usable
}

TEST_CASE("VPD 0x8F descriptor 0x0108: 64-byte ROD type descriptors, TOKEN_IN / TOKEN_OUT") {
  // Layout as FreeBSD CTL writes it (scsi_vpd_tpc_descriptor_srt + two 64-byte
  // scsi_vpd_tpc_descriptor_srtd: AUR with TIN|TOUT, BLOCK_ZERO with TIN) and sg3_utils reads it.
  bytes page = {0x00, 0x8F, 0x00, 0x00};
  bytes srt(8 + 2 * 64, 0);
  srt[0] = 0x01;
  srt[1] = 0x08;  // descriptor type 0x0108
  srt[2] = 0x00;
  srt[3] = 4 + 128;  // descriptor length
  srt[6] = 0x00;
  srt[7] = 128;                                                    // ROD type descriptors length
  srt[8] = 0x00, srt[9] = 0x01, srt[10] = 0x00, srt[11] = 0x00;    // 0x00010000 access upon reference
  srt[12] = 0x03;                                                  // TOKEN_IN | TOKEN_OUT
  srt[72] = 0xFF, srt[73] = 0xFF, srt[74] = 0x00, srt[75] = 0x01;  // 0xFFFF0001 block device zero
  srt[76] = 0x02;                                                  // TOKEN_IN
  page.insert(page.end(), srt.begin(), srt.end());
  page[3] = static_cast<std::uint8_t>(page.size() - 4);
  auto v = parse_vpd8f(page);
  REQUIRE(v);
  REQUIRE(v->rod_types.size() == 2);
  CHECK(v->rod_types[0].rod_type == 0x00010000u);
  CHECK(v->rod_types[0].token_in);
  CHECK(v->rod_types[0].token_out);
  CHECK(v->rod_types[1].rod_type == 0xFFFF0001u);
  CHECK(v->rod_types[1].token_in);
  CHECK_FALSE(v->rod_types[1].token_out);
  CHECK(v->accepts_rod_token(0xFFFF0001u));
  // Listed as output only, or not at all: not accepted.
  page[4 + 12] = 0x00;
  page[4 + 76] = 0x01;
  auto w = parse_vpd8f(page);
  REQUIRE(w);
  CHECK_FALSE(w->accepts_rod_token(0xFFFF0001u));
  // A descriptors length that claims more than the descriptor holds reads only whole entries.
  page[4 + 7] = 200;
  auto x = parse_vpd8f(page);
  REQUIRE(x);
  CHECK(x->rod_types.size() == 2);
}
