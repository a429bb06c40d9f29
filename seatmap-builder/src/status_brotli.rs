//! Brotli for availability documents, down to the entropy floor of `seat_status`.
//!
//! A general brotli encoder spends bits on short backward references, which on near-random
//! two-letter text (half the seats sold at random) cost more than they save: ~1.25 bits per
//! seat. Here the document's head (everything before the status string) goes through the
//! stock encoder, flushed to a byte boundary; the status string follows as our own
//! literal-only meta-blocks (RFC 7932 §9.2) with a *simple prefix code* per run of seats:
//! 0 bits per seat where a run has one status (a sold-out block), 1 bit where it has two,
//! 1-3 bits where it has three or four. The decoder needs nothing special: it is one valid
//! brotli stream. [`compress`] returns whichever is smaller, this or the stock encoding of
//! the whole document, so it is never worse.

use std::io::Write;

struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    filled: u32,
}

impl BitWriter {
    fn new(bytes: Vec<u8>) -> Self {
        BitWriter {
            bytes,
            acc: 0,
            filled: 0,
        }
    }

    /// Brotli packs bits least significant first.
    fn bits(&mut self, count: u32, value: u64) {
        debug_assert!(count <= 32 && value < (1u64 << count).max(1));
        self.acc |= value << self.filled;
        self.filled += count;
        while self.filled >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.filled -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.bytes.push(self.acc as u8);
        }
        self.bytes
    }
}

/// RFC 7932 §5 insert length codes: (base, extra bits).
const INSERT_CODES: [(u32, u32); 24] = [
    (0, 0),
    (1, 0),
    (2, 0),
    (3, 0),
    (4, 0),
    (5, 0),
    (6, 1),
    (8, 1),
    (10, 2),
    (14, 2),
    (18, 3),
    (26, 3),
    (34, 4),
    (50, 4),
    (66, 5),
    (98, 5),
    (130, 6),
    (194, 7),
    (322, 8),
    (578, 9),
    (1090, 10),
    (2114, 12),
    (6210, 14),
    (22594, 24),
];

/// Largest meta-block length (MLEN) brotli allows.
const MAX_MLEN: usize = 1 << 24;
/// Runs are cut at this many seats before merging runs with the same statuses, so a rare
/// status (a hold) widens the code only around it.
const CHUNK: usize = 1024;

/// The simple prefix code for up to four symbols: the symbols in the order written and, per
/// symbol, the code (as the decoder's table index) and its length.
struct SimpleCode {
    listed: Vec<u8>,
    tree_select: Option<bool>,
    codes: [(u8, u32); 256],
}

impl SimpleCode {
    /// The cheapest simple code for these symbol counts (1-4 distinct symbols).
    fn for_counts(counts: &[(u8, usize)]) -> SimpleCode {
        let mut by_freq = counts.to_vec();
        by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut codes = [(0u8, 0u32); 256];
        let sym: Vec<u8> = by_freq.iter().map(|c| c.0).collect();
        let (listed, tree_select) = match sym.len() {
            1 => (sym.clone(), None),
            2 => {
                let (lo, hi) = (sym[0].min(sym[1]), sym[0].max(sym[1]));
                codes[lo as usize] = (0, 1);
                codes[hi as usize] = (1, 1);
                (sym.clone(), None)
            }
            3 => {
                // The first listed symbol gets the 1-bit code; the other two, sorted, 2 bits.
                let (lo, hi) = (sym[1].min(sym[2]), sym[1].max(sym[2]));
                codes[sym[0] as usize] = (0, 1);
                codes[lo as usize] = (1, 2);
                codes[hi as usize] = (3, 2);
                (sym.clone(), None)
            }
            _ => {
                let n: Vec<usize> = by_freq.iter().map(|c| c.1).collect();
                let skewed = n[0] + 2 * n[1] + 3 * (n[2] + n[3]) < 2 * (n[0] + n[1] + n[2] + n[3]);
                if skewed {
                    // Lengths 1, 2, 3, 3: first listed, second listed, then the last two sorted.
                    let (lo, hi) = (sym[2].min(sym[3]), sym[2].max(sym[3]));
                    codes[sym[0] as usize] = (0, 1);
                    codes[sym[1] as usize] = (1, 2);
                    codes[lo as usize] = (3, 3);
                    codes[hi as usize] = (7, 3);
                } else {
                    // All 2 bits, assigned in sorted order to table indexes 0, 2, 1, 3.
                    let mut sorted = sym.clone();
                    sorted.sort_unstable();
                    for (symbol, index) in sorted.iter().zip([0u8, 2, 1, 3]) {
                        codes[*symbol as usize] = (index, 2);
                    }
                }
                (sym.clone(), Some(skewed))
            }
        };
        SimpleCode {
            listed,
            tree_select,
            codes,
        }
    }

    fn write_header(&self, out: &mut BitWriter) {
        write_simple_code_header(
            out,
            8,
            &self.listed.iter().map(|&s| s as u32).collect::<Vec<_>>(),
        );
        if let Some(skewed) = self.tree_select {
            out.bits(1, u64::from(skewed));
        }
    }
}

/// HSKIP = 1 (simple code), NSYM - 1, then each symbol in `symbol_bits` bits.
fn write_simple_code_header(out: &mut BitWriter, symbol_bits: u32, symbols: &[u32]) {
    out.bits(2, 1);
    out.bits(2, symbols.len() as u64 - 1);
    for &symbol in symbols {
        out.bits(symbol_bits, u64::from(symbol));
    }
}

/// One meta-block holding `literals` and nothing else: a single insert command whose copy
/// part the decoder skips because the meta-block ends with the inserts.
fn write_literal_meta_block(out: &mut BitWriter, literals: &[u8], is_last: bool) {
    let len = literals.len();
    debug_assert!((1..=MAX_MLEN).contains(&len));
    out.bits(1, u64::from(is_last));
    if is_last {
        out.bits(1, 0); // ISLASTEMPTY
    }
    let nibbles = (((usize::BITS - (len - 1).leading_zeros()) as usize).div_ceil(4)).max(4);
    out.bits(2, nibbles as u64 - 4);
    out.bits(4 * nibbles as u32, (len - 1) as u64);
    if !is_last {
        out.bits(1, 0); // ISUNCOMPRESSED
    }
    out.bits(1, 0); // NBLTYPESL = 1
    out.bits(1, 0); // NBLTYPESI = 1
    out.bits(1, 0); // NBLTYPESD = 1
    out.bits(2, 0); // NPOSTFIX
    out.bits(4, 0); // NDIRECT
    out.bits(2, 0); // context mode of the one literal block type
    out.bits(1, 0); // NTREESL = 1
    out.bits(1, 0); // NTREESD = 1

    let mut histogram = [0usize; 256];
    for &b in literals {
        histogram[b as usize] += 1;
    }
    let counts: Vec<(u8, usize)> = (0..=255u8)
        .filter(|&b| histogram[b as usize] > 0)
        .map(|b| (b, histogram[b as usize]))
        .collect();
    let code = SimpleCode::for_counts(&counts);
    code.write_header(out);

    let (insert_code, (base, extra_bits)) = INSERT_CODES
        .iter()
        .copied()
        .enumerate()
        .rev()
        .find(|(_, (base, _))| *base as usize <= len)
        .expect("code 0 has base 0");
    // Insert code with copy code 0; codes 0-7, 8-15 and 16-23 live in cells 128, 256, 448.
    let cell = [128u32, 256, 448][insert_code / 8];
    let command = cell + ((insert_code as u32 & 7) << 3);
    write_simple_code_header(out, 10, &[command]); // the one insert-and-copy symbol: 0 bits
    write_simple_code_header(out, 6, &[0]); // a distance code nobody reads
    out.bits(extra_bits, (len as u32 - base) as u64);
    for &b in literals {
        let (index, length) = code.codes[b as usize];
        out.bits(length, u64::from(index));
    }
}

/// Splits `status` into runs: chunks of [`CHUNK`] seats, adjacent chunks with the same set of
/// statuses merged, no run longer than a meta-block may be.
fn runs(status: &[u8]) -> Vec<&[u8]> {
    let set = |chunk: &[u8]| chunk.iter().fold(0u32, |acc, &b| acc | 1 << (b & 31));
    let mut runs: Vec<(&[u8], u32)> = Vec::new();
    let mut start = 0;
    for chunk in status.chunks(CHUNK) {
        let chunk_set = set(chunk);
        match runs.last_mut() {
            Some((run, run_set))
                if *run_set == chunk_set && run.len() + chunk.len() <= MAX_MLEN =>
            {
                *run = &status[start..start + run.len() + chunk.len()];
            }
            _ => {
                start += runs.last().map_or(0, |(run, _)| run.len());
                runs.push((&status[start..start + chunk.len()], chunk_set));
            }
        }
    }
    runs.into_iter().map(|(run, _)| run).collect()
}

fn stock_params(quality: u32, size_hint: usize) -> brotli::enc::BrotliEncoderParams {
    brotli::enc::BrotliEncoderParams {
        quality: quality as i32,
        q9_5: quality >= 10,
        lgwin: 22,
        size_hint,
        ..Default::default()
    }
}

pub fn stock(document: &[u8], quality: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(document.len() / 4);
    brotli::BrotliCompress(
        &mut &document[..],
        &mut out,
        &stock_params(quality, document.len()),
    )
    .expect("compressing in memory cannot fail");
    out
}

/// `document` ends with `status` and then `tail` (for JSON: `"}`). Returns the smaller of the
/// stock encoding and the head-stock + literal-status encoding.
pub fn compress(document: &[u8], status_len: usize, tail_len: usize, quality: u32) -> Vec<u8> {
    let whole = stock(document, quality);
    if status_len == 0 || tail_len == 0 || status_len + tail_len > document.len() {
        return whole;
    }
    let head_len = document.len() - status_len - tail_len;
    let mut head =
        brotli::CompressorWriter::with_params(Vec::new(), 4096, &stock_params(quality, head_len));
    head.write_all(&document[..head_len])
        .expect("writing to memory cannot fail");
    head.flush().expect("writing to memory cannot fail");
    // After a flush the stream is byte-aligned and open: our meta-blocks continue it.
    let mut out = BitWriter::new(head.get_ref().clone());
    for run in runs(&document[head_len..head_len + status_len]) {
        write_literal_meta_block(&mut out, run, false);
    }
    write_literal_meta_block(&mut out, &document[document.len() - tail_len..], true);
    let hybrid = out.finish();
    if hybrid.len() < whole.len() {
        hybrid
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn decode(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &bytes[..], &mut out).expect("a valid brotli stream");
        out
    }

    fn document(status: &str) -> Vec<u8> {
        format!(r#"{{"show_id":"s","sections":[{{"section_id":"A","available":3}}],"seat_status":"{status}"}}"#)
            .into_bytes()
    }

    fn hybrid_only(status: &str) -> Vec<u8> {
        let doc = document(status);
        let head_len = doc.len() - status.len() - 2;
        let mut head =
            brotli::CompressorWriter::with_params(Vec::new(), 4096, &stock_params(5, head_len));
        head.write_all(&doc[..head_len]).unwrap();
        head.flush().unwrap();
        let mut out = BitWriter::new(head.get_ref().clone());
        for run in runs(status.as_bytes()) {
            write_literal_meta_block(&mut out, run, false);
        }
        write_literal_meta_block(&mut out, b"\"}", true);
        out.finish()
    }

    fn random_status(rng: &mut StdRng, len: usize, alphabet: &[u8], weights: &[f64]) -> String {
        (0..len)
            .map(|_| {
                let mut x = rng.random::<f64>() * weights.iter().sum::<f64>();
                let mut i = 0;
                while x >= weights[i] && i + 1 < weights.len() {
                    x -= weights[i];
                    i += 1;
                }
                alphabet[i] as char
            })
            .collect()
    }

    #[test]
    fn every_code_shape_decodes_to_the_document() {
        let mut rng = StdRng::seed_from_u64(7);
        let cases = [
            "A".repeat(5000),
            "S".to_owned(),
            random_status(&mut rng, 3000, b"AS", &[1.0, 1.0]),
            random_status(&mut rng, 3000, b"ASH", &[5.0, 4.0, 1.0]),
            random_status(&mut rng, 3000, b"ASHX", &[1.0, 1.0, 1.0, 1.0]),
            random_status(&mut rng, 3000, b"ASHX", &[20.0, 5.0, 1.0, 1.0]),
            random_status(&mut rng, 70_000, b"ASHX", &[50.0, 50.0, 0.01, 0.01]),
        ];
        for status in &cases {
            assert_eq!(
                decode(&hybrid_only(status)),
                document(status),
                "{} seats",
                status.len()
            );
            assert_eq!(
                decode(&compress(&document(status), status.len(), 2, 10)),
                document(status)
            );
        }
    }

    /// A status string of up to ~5000 seats: runs, each drawing its seats from a palette of
    /// statuses (a repeated status is drawn more often), so that every shape of code is
    /// written: one to four symbols, evenly or skewed.
    fn any_status() -> impl Strategy<Value = String> {
        let run = (
            prop::collection::vec(prop::sample::select(b"AHSX".to_vec()), 1..=8),
            prop::collection::vec(any::<prop::sample::Index>(), 0..1700),
        )
            .prop_map(|(palette, seats)| {
                seats
                    .iter()
                    .map(|seat| char::from(*seat.get(&palette)))
                    .collect::<String>()
            });
        prop::collection::vec(run, 0..=3).prop_map(|runs| runs.concat())
    }

    proptest! {
        #[test]
        fn any_status_string_decodes_to_the_document(status in any_status(), quality in 0..=11u32) {
            prop_assert_eq!(decode(&hybrid_only(&status)), document(&status));
            prop_assert_eq!(
                decode(&compress(&document(&status), status.len(), 2, quality)),
                document(&status)
            );
        }
    }

    #[test]
    fn random_half_sold_reaches_one_bit_per_seat() {
        let mut rng = StdRng::seed_from_u64(2027);
        let status = random_status(&mut rng, 80_000, b"AS", &[1.0, 1.0]);
        let doc = document(&status);
        let compressed = compress(&doc, status.len(), 2, 10);
        assert!(
            compressed.len() < 10_000 + 200,
            "{} bytes",
            compressed.len()
        );
        assert!(compressed.len() < stock(&doc, 10).len());
    }

    #[test]
    fn never_worse_than_the_stock_encoder() {
        // Long runs (blocks sold together) suit backward references; the stock output wins.
        let status: String = (0..80_000)
            .map(|i| if (i / 40) % 3 == 0 { 'S' } else { 'A' })
            .collect();
        let doc = document(&status);
        assert_eq!(compress(&doc, status.len(), 2, 10), stock(&doc, 10));
    }
}
