//! A length-prefixed byte codec with hard limits per protocol: a peer cannot make a node
//! allocate or read more than the protocol's limit.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::io;

/// Frames one message as a 4-byte big-endian length and the bytes; refuses lengths over the
/// limit before reading them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BytesCodec {
    pub(crate) max_request: usize,
    pub(crate) max_response: usize,
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the protocol's limit of {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
    max: usize,
) -> io::Result<()> {
    if bytes.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "message of {} bytes is over the protocol's limit of {max}",
                bytes.len()
            ),
        ));
    }
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

impl libp2p::request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, self.max_request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, self.max_response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use libp2p::request_response::Codec;

    #[test]
    fn frames_round_trip_and_limits_hold() {
        futures::executor::block_on(async {
            let mut c = BytesCodec {
                max_request: 8,
                max_response: 16,
            };
            let p = StreamProtocol::new("/t/1");
            let mut buf = Cursor::new(Vec::new());
            c.write_request(&p, &mut buf, vec![1, 2, 3]).await.unwrap();
            let mut r = Cursor::new(buf.into_inner());
            assert_eq!(c.read_request(&p, &mut r).await.unwrap(), vec![1, 2, 3]);
            // Over the limit: refused before reading the body.
            let mut big = Cursor::new([0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9].to_vec());
            assert!(c.read_request(&p, &mut big).await.is_err());
            // A length prefix that claims 4 GiB is refused without allocating it.
            let mut huge = Cursor::new([0xff, 0xff, 0xff, 0xff].to_vec());
            assert!(c.read_response(&p, &mut huge).await.is_err());
            // Truncated body.
            let mut cut = Cursor::new([0, 0, 0, 4, 1].to_vec());
            assert!(c.read_request(&p, &mut cut).await.is_err());
            let mut out = Cursor::new(Vec::new());
            assert!(c.write_request(&p, &mut out, vec![0; 9]).await.is_err());
        });
    }
}
