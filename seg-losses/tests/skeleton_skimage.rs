//! The 3D thinning against scikit-image's `skeletonize` (Lee et al. 1994) on random blobs
//! (fixtures/generate_skeletons.py): the same voxels.

use seg_losses::metrics::skeletonize::skeletonize;

#[test]
fn three_d_skeletons_match_scikit_image() {
    let text = include_str!("fixtures/skeletons_3d.txt");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() % 3, 0);
    for case in lines.chunks(3) {
        let shape: Vec<usize> = case[0].split_whitespace().map(|v| v.parse().unwrap()).collect();
        let bits = |s: &str| s.bytes().map(|b| b == b'1').collect::<Vec<bool>>();
        let (mask, expected) = (bits(case[1]), bits(case[2]));
        assert!(
            expected.iter().any(|&v| v),
            "{shape:?}: an empty expected skeleton tests nothing"
        );
        assert_eq!(skeletonize(&mask, &shape).unwrap(), expected, "{shape:?}");
    }
}
