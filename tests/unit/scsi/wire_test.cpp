// Byte-exact tests of the SCSI wire formats against DESIGN.md §3 (SPC-4 / SBC-3 offsets).
#include <doctest/doctest.h>

#include <vector>

#include "src/scsi/wire.hpp"

using namespace offcopy::detail::scsi;
using bytes = std::vector<std::uint8_t>;

namespace {
bytes naa16() { return {0x60, 0x01, 0x40, 0x5a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11}; }
}  // namespace

TEST_CASE("CDBs: opcode, service action, list id and lengths at their offsets") {
  auto x = extended_copy_lid1_cdb(0x1234'5678);
  CHECK(x == cdb16{0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0});
  auto rcop = receive_copy_operating_parameters_cdb(1024);
  CHECK(rcop == cdb16{0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x04, 0x00, 0, 0});
  auto rcs = receive_copy_status_lid1_cdb(0x5A, 12);
  CHECK(rcs == cdb16{0x84, 0x00, 0x5A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0});
  auto pt = populate_token_cdb(0xA1B2C3D4, 48);
  CHECK(pt == cdb16{0x83, 0x10, 0, 0, 0, 0, 0xA1, 0xB2, 0xC3, 0xD4, 0, 0, 0, 48, 0, 0});
  auto wut = write_using_token_cdb(7, 552);
  CHECK(wut == cdb16{0x83, 0x11, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0x02, 0x28, 0, 0});
  auto rrti = receive_rod_token_information_cdb(0x01020304, 0x400);
  CHECK(rrti == cdb16{0x84, 0x07, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0x04, 0x00, 0, 0});
  auto rc16 = read_capacity16_cdb(32);
  CHECK(rc16 == cdb16{0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0});
  CHECK(inquiry_cdb(true, 0x83, 0x200) == cdb6{0x12, 0x01, 0x83, 0x02, 0x00, 0});
  CHECK(inquiry_cdb(false, 0x83, 36) == cdb6{0x12, 0x00, 0x00, 0x00, 36, 0});
}

TEST_CASE("EXTENDED COPY LID1: header, two 0xE4 CSCDs and 0x02 segments, every field") {
  std::vector<cscd_identification> cscds = {{naa16(), 512, 0}, {bytes{0x50, 1, 2, 3, 4, 5, 6, 7}, 512, 0}};
  std::vector<block_segment> segs = {{0, 1, 0xFFFF, 0x0102030405060708ULL, 0x1112131415161718ULL},
                                     {0, 1, 8, 100, 200}};
  auto b = encode_extended_copy_lid1(0x42, list_id_usage::discard, cscds, segs);
  REQUIRE(b.size() == 16 + 2 * 32 + 2 * 28);
  // Header.
  CHECK(b[0] == 0x42);
  CHECK(b[1] == ((0b10 << 3) | 0x01));  // list id usage 10b (discard), priority 1
  CHECK(b[2] == 0x00);
  CHECK(b[3] == 64);  // CSCD descriptor list length
  CHECK(b[4] == 0);
  CHECK(b[8] == 0);
  CHECK(b[9] == 0);
  CHECK(b[10] == 0);
  CHECK(b[11] == 56);  // segment descriptor list length
  CHECK(b[12] == 0);
  CHECK(b[15] == 0);  // inline data length
  // CSCD 0.
  const std::uint8_t* c = &b[16];
  CHECK(c[0] == 0xE4);
  CHECK(c[1] == 0x00);  // peripheral type 0 (disk)
  CHECK(c[2] == 0);
  CHECK(c[3] == 0);
  CHECK(c[4] == 0x01);  // code set binary
  CHECK(c[5] == 0x03);  // association LU, designator type NAA
  CHECK(c[6] == 0);
  CHECK(c[7] == 16);  // designator length
  CHECK(bytes(c + 8, c + 24) == naa16());
  CHECK(bytes(c + 24, c + 28) == bytes{0, 0, 0, 0});  // zero padded to 20 bytes
  CHECK(c[28] == 0);                                  // PAD = 0
  CHECK(c[29] == 0x00);
  CHECK(c[30] == 0x02);
  CHECK(c[31] == 0x00);  // disk block length 512
  // CSCD 1 (8-byte NAA).
  c = &b[48];
  CHECK(c[0] == 0xE4);
  CHECK(c[7] == 8);
  CHECK(c[8] == 0x50);
  CHECK(c[15] == 7);
  CHECK(bytes(c + 16, c + 28) == bytes(12, 0));
  // Segment 0.
  const std::uint8_t* s = &b[80];
  CHECK(s[0] == 0x02);
  CHECK(s[1] == 0x00);  // DC = 0, CAT = 0
  CHECK(s[2] == 0x00);
  CHECK(s[3] == 0x18);  // descriptor length 24
  CHECK(s[4] == 0);
  CHECK(s[5] == 0);  // source CSCD index 0
  CHECK(s[6] == 0);
  CHECK(s[7] == 1);  // destination CSCD index 1
  CHECK(s[8] == 0);
  CHECK(s[9] == 0);  // reserved
  CHECK(s[10] == 0xFF);
  CHECK(s[11] == 0xFF);  // 65535 blocks: the 16-bit maximum
  CHECK(bytes(s + 12, s + 20) == bytes{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(bytes(s + 20, s + 28) == bytes{0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18});
  // Segment 1.
  s = &b[108];
  CHECK(s[0] == 0x02);
  CHECK(s[11] == 8);
  CHECK(s[19] == 100);
  CHECK(s[27] == 200);
}

TEST_CASE("EXTENDED COPY LID1: no list id and hold usages, one CSCD for a same-LU copy") {
  std::vector<cscd_identification> one = {{naa16(), 4096, 0}};
  std::vector<block_segment> segs = {{0, 0, 1, 0, 10}};
  auto b = encode_extended_copy_lid1(0x99, list_id_usage::none, one, segs);
  REQUIRE(b.size() == 16 + 32 + 28);
  CHECK(b[0] == 0);  // list id ignored with "no list id"
  CHECK(b[1] == ((0b11 << 3) | 0x01));
  CHECK(b[3] == 32);
  CHECK(b[11] == 28);
  CHECK(b[16 + 29] == 0x00);
  CHECK(b[16 + 30] == 0x10);
  CHECK(b[16 + 31] == 0x00);  // 4096
  CHECK(b[48 + 5] == 0);
  CHECK(b[48 + 7] == 0);  // both ends CSCD 0
  auto h = encode_extended_copy_lid1(3, list_id_usage::hold, one, segs);
  CHECK(h[0] == 3);
  CHECK(h[1] == 0x01);
}

TEST_CASE("RECEIVE COPY OPERATING PARAMETERS: LIO's answer") {
  bytes d(46, 0);
  put_be32(&d[0], 42);
  d[4] = 0x01;  // SNLID
  put_be16(&d[8], 2);
  put_be16(&d[10], 1);
  put_be32(&d[12], 1024);
  put_be32(&d[16], 256u << 20);
  d[37] = 9;
  d[43] = 2;
  d[44] = 0x02;
  d[45] = 0xE4;
  auto p = parse_copy_operating_parameters(d);
  REQUIRE(p);
  CHECK(p->snlid);
  CHECK(p->max_cscd_descriptors == 2);
  CHECK(p->max_segment_descriptors == 1);
  CHECK(p->max_descriptor_list_bytes == 1024);
  CHECK(p->max_segment_bytes == 256u << 20);
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

TEST_CASE("VPD 0x83: the LU's NAA, not the port's or the target's") {
  bytes page = {0x00, 0x83, 0x00, 0x00};
  auto add = [&](std::uint8_t code_set, std::uint8_t assoc_type, bytes id) {
    page.push_back(code_set);
    page.push_back(assoc_type);
    page.push_back(0);
    page.push_back(static_cast<std::uint8_t>(id.size()));
    page.insert(page.end(), id.begin(), id.end());
  };
  add(0x02, 0x01, bytes{'L', 'I', 'O', '-', 'O', 'R', 'G', ' '});      // T10 vendor id, ASCII
  add(0x01, 0x13, bytes{0x51, 2, 3, 4, 5, 6, 7, 8});                   // NAA, target port association
  add(0x01, 0x03, naa16());                                            // NAA, LU association
  add(0x01, 0x03, bytes{0x52, 9, 9, 9, 9, 9, 9, 9});                   // shorter NAA, LU
  put_be16(&page[2], static_cast<std::uint16_t>(page.size() - 4));
  auto naa = parse_vpd83_lu_naa(page);
  REQUIRE(naa);
  CHECK(*naa == naa16());
  // Truncated: the LU designator's length runs past the end.
  bytes cut(page.begin(), page.begin() + 4 + 12 + 12 + 10);
  put_be16(&cut[2], static_cast<std::uint16_t>(cut.size() - 4));
  CHECK_FALSE(parse_vpd83_lu_naa(cut));
  CHECK_FALSE(parse_vpd83_lu_naa(bytes{0, 0x80, 0, 0}));
}

TEST_CASE("VPD 0x8F: ROD token limits, supported commands, general copy operations") {
  bytes page = {0x00, 0x8F, 0x00, 0x00};
  bytes rod(36, 0);
  put_be16(&rod[0], 0x0000);
  put_be16(&rod[2], 32);
  put_be16(&rod[10], 8);
  put_be32(&rod[12], 600);
  put_be32(&rod[16], 30);
  put_be64(&rod[20], 0x10000);
  put_be64(&rod[28], 0x800);
  page.insert(page.end(), rod.begin(), rod.end());
  bytes cmds = {0x00, 0x01, 0x00, 0x00, /*list length*/ 0, 0x83, 2, 0x10, 0x11, 0x84, 2, 0x03, 0x07};
  cmds[4] = static_cast<std::uint8_t>(cmds.size() - 5);
  put_be16(&cmds[2], static_cast<std::uint16_t>(cmds.size() - 4));
  page.insert(page.end(), cmds.begin(), cmds.end());
  bytes gen(36, 0);
  put_be16(&gen[0], 0x8001);
  put_be16(&gen[2], 32);
  put_be32(&gen[12], 1u << 20);
  page.insert(page.end(), gen.begin(), gen.end());
  put_be16(&page[2], static_cast<std::uint16_t>(page.size() - 4));
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
  // A descriptor that claims more than the page holds ends the walk without reading past it.
  bytes bad = page;
  put_be16(&bad[4 + 2], 0xFFF0);
  auto w = parse_vpd8f(bad);
  REQUIRE(w);
  CHECK_FALSE(w->rod_limits);
  CHECK_FALSE(parse_vpd8f(bytes{0, 0x8F, 0}));
}

TEST_CASE("POPULATE TOKEN parameter list") {
  std::vector<block_range> r = {{0x0102030405060708ULL, 0x11223344}, {16, 8}};
  auto b = encode_populate_token(r, true, 30);
  REQUIRE(b.size() == 16 + 32);
  CHECK(get_be16(&b[0]) == b.size() - 2);
  CHECK(b[2] == 0x01);  // IMMED, RTV = 0
  CHECK(get_be32(&b[4]) == 30);
  CHECK(get_be32(&b[8]) == 0);
  CHECK(get_be16(&b[14]) == 32);
  CHECK(bytes(&b[16], &b[24]) == bytes{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(bytes(&b[24], &b[28]) == bytes{0x11, 0x22, 0x33, 0x44});
  CHECK(bytes(&b[28], &b[32]) == bytes{0, 0, 0, 0});
  CHECK(get_be64(&b[32]) == 16);
  CHECK(get_be32(&b[40]) == 8);
  auto z = encode_populate_token(r, false, 0, rod_type_zero);
  CHECK(z[2] == 0x02);  // RTV
  CHECK(get_be32(&z[8]) == 0xFFFF0001);
}

TEST_CASE("WRITE USING TOKEN parameter list: token at 16-527, range list length at 534-535") {
  bytes token(512);
  for (std::size_t i = 0; i < token.size(); ++i) token[i] = static_cast<std::uint8_t>(i * 7 + 1);
  std::vector<block_range> r = {{1000, 24}};
  auto b = encode_write_using_token(token, 0x0A0B, r, true);
  REQUIRE(b.size() == 536 + 16);
  CHECK(get_be16(&b[0]) == 550);
  CHECK(b[2] == 0x01);
  CHECK(bytes(&b[3], &b[8]) == bytes(5, 0));
  CHECK(get_be64(&b[8]) == 0x0A0B);
  CHECK(bytes(&b[16], &b[528]) == token);
  CHECK(bytes(&b[528], &b[534]) == bytes(6, 0));
  CHECK(b[534] == 0x00);
  CHECK(b[535] == 16);  // ddpt 0.97 writes this one byte early (533); we follow SBC
  CHECK(get_be64(&b[536]) == 1000);
  CHECK(get_be32(&b[544]) == 24);
  auto z = zero_rod_token();
  CHECK(get_be32(&z[0]) == 0xFFFF0001);
  CHECK(get_be16(&z[6]) == 0x01F8);
}

TEST_CASE("RECEIVE ROD TOKEN INFORMATION: status, transfer count, sense and token") {
  bytes d(32 + 18 + 6 + 512, 0);
  put_be32(&d[0], static_cast<std::uint32_t>(d.size() - 4));
  d[4] = 0x10;  // response to POPULATE TOKEN
  d[5] = copy_op_completed;
  put_be32(&d[8], 5);
  d[13] = 18;
  d[14] = 18;
  d[15] = 0xF1;
  put_be64(&d[16], 4096);
  auto sense = make_fixed_sense(0x0A, 0x0D, 0x02);
  std::copy(sense.begin(), sense.end(), &d[32]);
  put_be32(&d[50], 2 + 512);
  for (int i = 0; i < 512; ++i) d[56 + i] = static_cast<std::uint8_t>(i);
  auto r = parse_rod_token_information(d);
  REQUIRE(r);
  CHECK(r->response_to_service_action == 0x10);
  CHECK(r->copy_status == copy_op_completed);
  CHECK(r->status_update_delay_ms == 5);
  CHECK(r->transfer_count_units == 0xF1);
  CHECK(r->transfer_count == 4096);
  CHECK(r->sense == sense);
  REQUIRE(r->token.size() == 512);
  CHECK(r->token[0] == 0);
  CHECK(r->token[511] == 255);
  // Without a token.
  bytes s(32, 0);
  put_be32(&s[0], 28);
  s[5] = copy_op_in_progress_foreground;
  auto q = parse_rod_token_information(s);
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
  bytes rc(32, 0);
  put_be64(&rc[0], 131071);
  put_be32(&rc[8], 512);
  rc[13] = 3;
  auto r = parse_read_capacity16(rc);
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

TEST_CASE("transfer count units: bytes, 2^10n bytes and logical blocks, rounded down; reserved codes unusable") {
  // Codes as FreeBSD CTL scsi_all.h RCS_TC_BYTES..RCS_TC_EBYTES (00h-06h) and RCS_TC_LBAS (F1h).
  CHECK(transfer_count_blocks(0x00, 1023, 512) == 1u);        // bytes: 1023 B is one whole block
  CHECK(transfer_count_blocks(0x00, 1024, 512) == 2u);
  CHECK(transfer_count_blocks(0x01, 3, 4096) == 0u);          // 3 KiB < one 4 KiB block
  CHECK(transfer_count_blocks(0x01, 750, 512) == 1500u);
  CHECK(transfer_count_blocks(0x02, 1, 512) == 2048u);        // MiB
  CHECK(transfer_count_blocks(0x03, 1, 4096) == 262144u);     // GiB
  CHECK(transfer_count_blocks(0x04, 1, 512) == (1ULL << 31)); // TiB
  CHECK(transfer_count_blocks(0x06, 1, 512) == (1ULL << 51)); // EiB
  CHECK(transfer_count_blocks(0x06, ~0ULL, 512) == ~0ULL);    // saturates, never wraps
  CHECK(transfer_count_blocks(0xF1, 77, 4096) == 77u);        // already blocks
  CHECK_FALSE(transfer_count_blocks(0x07, 1, 512));           // reserved
  CHECK_FALSE(transfer_count_blocks(0xF0, 1, 512));
  CHECK_FALSE(transfer_count_blocks(0xF2, 1, 512));
  CHECK_FALSE(transfer_count_blocks(0x00, 1024, 0));          // no block size: nothing usable
}

TEST_CASE("VPD 0x8F descriptor 0x0108: 64-byte ROD type descriptors, TOKEN_IN / TOKEN_OUT") {
  // Layout as FreeBSD CTL writes it (scsi_vpd_tpc_descriptor_srt + two 64-byte
  // scsi_vpd_tpc_descriptor_srtd: AUR with TIN|TOUT, BLOCK_ZERO with TIN) and sg3_utils reads it.
  bytes page = {0x00, 0x8F, 0x00, 0x00};
  bytes srt(8 + 2 * 64, 0);
  srt[0] = 0x01;
  srt[1] = 0x08;                     // descriptor type 0x0108
  srt[2] = 0x00;
  srt[3] = 4 + 128;                  // descriptor length
  srt[6] = 0x00;
  srt[7] = 128;                      // ROD type descriptors length
  srt[8] = 0x00, srt[9] = 0x01, srt[10] = 0x00, srt[11] = 0x00;  // 0x00010000 access upon reference
  srt[12] = 0x03;                                                 // TOKEN_IN | TOKEN_OUT
  srt[72] = 0xFF, srt[73] = 0xFF, srt[74] = 0x00, srt[75] = 0x01;  // 0xFFFF0001 block device zero
  srt[76] = 0x02;                                                 // TOKEN_IN
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
