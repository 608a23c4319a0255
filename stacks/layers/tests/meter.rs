//! `Metered`: the counts follow the device wherever it goes, failures are counted apart, and the
//! data passes through untouched.

use morgana::Block;
use morgana_layers::{BlockCounts, Metered};
use morgana_mem::{FaultyBlock, MemBlock};

fn run<F: core::future::Future>(f: F) -> F::Output {
    let time = morgana_rt::VirtualTime::new();
    morgana_rt::Executor::new(time.clone()).block_on(&mut time.park(), f).unwrap()
}

#[test]
fn counts_what_reaches_the_device_and_passes_the_data_through() {
    run(async {
        let (mut disk, meter) = Metered::new(MemBlock::new(512, 16));
        disk.write(2, &[0xab; 1024]).await.unwrap();
        disk.write(9, &[0xcd; 512]).await.unwrap();
        disk.flush().await.unwrap();
        let mut buf = [0; 1536];
        disk.read(2, &mut buf).await.unwrap();
        assert_eq!(&buf[..1024], &[0xab; 1024][..]);
        assert_eq!(&buf[1024..], &[0; 512][..]);
        let want =
            BlockCounts { reads: 1, bytes_read: 1536, writes: 2, bytes_written: 1536, flushes: 1, errors: 0 };
        assert_eq!(meter.counts(), want);
        assert_eq!(disk.counts(), want);
        assert_eq!(disk.info().sectors, 16);

        // The device handed back holds what was written through the layer.
        let mut inner = disk.into_inner();
        let mut sector = [0; 512];
        inner.read(9, &mut sector).await.unwrap();
        assert_eq!(sector, [0xcd; 512]);
        assert_eq!(meter.counts(), want, "reads after into_inner are not counted");
    });
}

#[test]
fn a_failed_call_counts_as_an_error_not_as_traffic() {
    run(async {
        let dying = FaultyBlock::new(MemBlock::new(512, 16), 1).fail_after_writes(1);
        let (mut disk, meter) = Metered::new(dying);
        disk.write(0, &[1; 512]).await.unwrap();
        assert!(disk.write(1, &[2; 512]).await.is_err());
        assert!(disk.read(99, &mut [0; 512]).await.is_err(), "past the end");
        let counts = meter.counts();
        assert_eq!((counts.writes, counts.bytes_written), (1, 512));
        assert_eq!((counts.reads, counts.errors), (0, 2));
    });
}

#[test]
fn a_disk_chosen_at_run_time_is_one_type_and_calls_reach_the_side_picked() {
    run(async {
        let (metered, meter) = Metered::new(MemBlock::new(512, 8));
        let mut disks: [morgana::Either<MemBlock, Metered<MemBlock>>; 2] =
            [morgana::Either::Left(MemBlock::new(512, 4)), morgana::Either::Right(metered)];
        for disk in &mut disks {
            disk.write(1, &[9; 512]).await.unwrap();
            disk.flush().await.unwrap();
        }
        assert_eq!(disks[0].info().sectors, 4);
        assert_eq!(disks[1].info().sectors, 8);
        assert_eq!((meter.counts().writes, meter.counts().flushes), (1, 1), "only the right side counts");
        let mut sector = [0; 512];
        disks[0].read(1, &mut sector).await.unwrap();
        assert_eq!(sector, [9; 512]);
    });
}
