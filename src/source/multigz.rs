//! [`MultiGz`]: the streaming decoder of a gzip body with any number of members, which never
//! decodes past the byte limit.

#[derive(Debug, PartialEq, Eq)]
pub(super) enum GzError {
    /// The decoded body passed the limit.
    TooLarge,
    /// The data stops inside a member.
    CutOff,
    /// Not gzip, a bad checksum, or bytes after the last member that are not another one.
    Corrupt(String),
}

/// Streaming decoder of a gzip body with any number of members (RFC 1952 2.2: "a gzip file
/// consists of a series of members"; pigz and servers that concatenate compressed parts send
/// several). Each member's header, CRC-32 and length are checked by zlib; zero bytes after the
/// last member are ignored, as gzip(1) does; anything else after it is an error, never dropped.
///
/// Decoded bytes go straight into the caller's buffer, which never grows past `limit + 1`
/// bytes: a gzip bomb is refused the moment it decodes past the limit.
pub(super) struct MultiGz {
    inflate: flate2::Decompress,
    state: GzState,
    members: u32,
    /// zlib may hold decoded output it had no room for: call it again even without input.
    pending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GzState {
    Member,
    /// After a member's trailer: another member, zero padding or the end.
    Between,
    Padding,
}

/// Growth step of the decoded buffer when the body gave no size.
pub(super) const GZ_STEP: usize = 64 << 10;

impl MultiGz {
    pub(super) fn new() -> Self {
        MultiGz {
            inflate: flate2::Decompress::new_gzip(15),
            state: GzState::Member,
            members: 0,
            pending: false,
        }
    }

    pub(super) fn push(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: u64,
    ) -> Result<(), GzError> {
        let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
        loop {
            match self.state {
                GzState::Member => {
                    if input.is_empty() && !self.pending {
                        return Ok(());
                    }
                    if out.len() == out.capacity() {
                        if out.len() >= cap {
                            return Err(GzError::TooLarge);
                        }
                        let target = out.len().saturating_mul(2).max(out.len() + GZ_STEP);
                        out.reserve_exact(target.min(cap) - out.len());
                    }
                    let (in_before, out_before) = (self.inflate.total_in(), out.len());
                    let status = self
                        .inflate
                        .decompress_vec(input, out, flate2::FlushDecompress::None)
                        .map_err(|e| {
                            GzError::Corrupt(format!(
                                "{} (in member {})",
                                e.message().unwrap_or("invalid gzip data"),
                                self.members + 1
                            ))
                        })?;
                    let used = (self.inflate.total_in() - in_before) as usize;
                    input = &input[used..];
                    if out.len() as u64 > limit {
                        return Err(GzError::TooLarge);
                    }
                    if status == flate2::Status::StreamEnd {
                        self.members += 1;
                        self.state = GzState::Between;
                        self.pending = false;
                        continue;
                    }
                    let progress = used > 0 || out.len() > out_before;
                    self.pending = out.len() == out.capacity();
                    if !progress && out.len() < out.capacity() {
                        if input.is_empty() {
                            self.pending = false;
                            return Ok(());
                        }
                        return Err(GzError::Corrupt("the decoder stopped making progress".into()));
                    }
                }
                GzState::Between => match input.first() {
                    None => return Ok(()),
                    Some(0) => self.state = GzState::Padding,
                    Some(0x1f) => {
                        self.inflate = flate2::Decompress::new_gzip(15);
                        self.state = GzState::Member;
                    }
                    Some(b) => {
                        return Err(GzError::Corrupt(format!(
                            "byte 0x{b:02X} follows gzip member {} where another member or the end should be",
                            self.members
                        )))
                    }
                },
                GzState::Padding => {
                    return match input.iter().find(|&&b| b != 0) {
                        None => Ok(()),
                        Some(b) => Err(GzError::Corrupt(format!(
                            "byte 0x{b:02X} follows the zero padding after gzip member {}",
                            self.members
                        ))),
                    }
                }
            }
        }
    }

    /// The body ended: drains what zlib still holds and checks that no member was cut off.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>, limit: u64) -> Result<(), GzError> {
        self.push(&[], out, limit)?;
        let nothing_at_all = self.members == 0 && self.inflate.total_in() == 0;
        if self.state == GzState::Member && !nothing_at_all {
            return Err(GzError::CutOff);
        }
        Ok(())
    }
}
