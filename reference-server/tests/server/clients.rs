//! Real clients (curl, lftp, Python ftplib) against the reference server on
//! loopback. The README's test
//! command (ci/test.sh) installs them; a missing one fails with what to install.

use std::time::Duration;

use crate::util::*;

async fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run {program}: {e} — install it (apt-get install -y curl lftp python3), or run ci/test.sh which does")
    });
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).await.unwrap();
    }
    drop(child.stdin.take());
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within 30 s"))
        .unwrap()
}

#[tokio::test]
async fn curl_downloads_and_uploads_honouring_the_227_address() {
    let srv = TestServer::start("passive_ports = [61200, 61210]\nanonymous_upload = true").await;
    let url = format!("ftp://{}/hello.txt", srv.addr);
    let out = run(
        "curl",
        &["-sS", "--disable-epsv", "--no-ftp-skip-pasv-ip", &url],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, HELLO);
    let up = format!("ftp://{}/from-curl.txt", srv.addr);
    let out = run(
        "curl",
        &["-sS", "-T", "-", &up],
        Some(b"uploaded by curl\n"),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(srv.root.path().join("from-curl.txt")).unwrap(),
        b"uploaded by curl\n"
    );
    assert!(srv.logs.contains("PASV"), "curl used PASV as asked");
    // Active mode: curl sends EPRT/PORT with its own address.
    let out = run("curl", &["-sS", "-P", "127.0.0.1", &url], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, HELLO);
}

#[tokio::test]
async fn python_ftplib_passive_and_active() {
    let srv = TestServer::start("passive_ports = [61220, 61230]\nanonymous_upload = true").await;
    let script = format!(
        r#"
import ftplib, io, sys
f = ftplib.FTP()
f.connect("{ip}", {port}, timeout=10)
f.login()
for passive in (True, False):
    f.set_pasv(passive)
    buf = io.BytesIO()
    f.retrbinary("RETR hello.txt", buf.write)
    sys.stdout.write(buf.getvalue().decode())
f.set_pasv(True)
f.storbinary("STOR py.txt", io.BytesIO(b"from python\n"))
print(sorted(f.nlst()))
f.quit()
"#,
        ip = srv.addr.ip(),
        port = srv.addr.port()
    );
    let out = run("python3", &["-c", &script], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let hello = String::from_utf8_lossy(HELLO);
    assert!(text.starts_with(&format!("{hello}{hello}")), "{text}");
    assert!(text.contains("'py.txt'"), "{text}");
    assert!(srv.logs.contains("PORT accepted"), "active mode was used");
}

#[tokio::test]
async fn lftp_lists_and_gets() {
    let srv = TestServer::start("passive_ports = [61240, 61250]").await;
    let dest = tempfile::tempdir().unwrap();
    let script = format!(
        "set ftp:passive-mode true; set ftp:prefer-epsv false; set net:max-retries 1; set net:timeout 10; open -p {} {}; cls -1; get hello.txt -o {}/got.txt",
        srv.addr.port(),
        srv.addr.ip(),
        dest.path().display()
    );
    let out = run("lftp", &["-c", &script], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello.txt"));
    assert_eq!(std::fs::read(dest.path().join("got.txt")).unwrap(), HELLO);
}
