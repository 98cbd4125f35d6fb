;; The two loops of Pillow's 8-bit resampling (runtime/preprocess/resize.ts) in WebAssembly SIMD:
;; the same integer arithmetic (8-bit samples times 22-bit fixed-point weights summed in 32 bits
;; from 1 << 21, shifted right by 22 and clipped to 0..255), sixteen samples at a time.
;; Regenerate resampleWasm.ts after an edit: node scripts/build-wasm.mjs
;;
;; Every buffer the caller places in memory has 16 spare bytes after it: a row's last 16-byte
;; chunk may read and write past the row's end. Rows are written in increasing order, so what a
;; chunk writes into the next row is overwritten by that row's own first chunk.
(module
  (memory (export "memory") 1)

  ;; Convolve along the slow axis. Output row yy (row bytes wide) sums ksize-weighted source rows
  ;; from bounds[2 yy] - shift, bounds[2 yy + 1] of them, with weights kk[yy ksize ...] (i32).
  (func (export "convolveRows")
    (param $src i32) (param $row i32) (param $outRows i32) (param $bounds i32)
    (param $kk i32) (param $ksize i32) (param $shift i32) (param $out i32)
    (local $yy i32) (local $i i32) (local $t i32) (local $taps i32) (local $first i32)
    (local $weights i32) (local $p i32) (local $o i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $v v128) (local $w v128) (local $lo v128) (local $hi v128)
    (block $done
      (br_if $done (i32.le_s (local.get $outRows) (i32.const 0)))
      (loop $rows
        ;; first source row of this output row, and its number of taps
        (local.set $first
          (i32.add (local.get $src)
            (i32.mul (local.get $row)
              (i32.sub (i32.load (i32.add (local.get $bounds) (i32.shl (local.get $yy) (i32.const 3)))) (local.get $shift)))))
        (local.set $taps (i32.load (i32.add (local.get $bounds) (i32.add (i32.shl (local.get $yy) (i32.const 3)) (i32.const 4)))))
        (local.set $weights (i32.add (local.get $kk) (i32.shl (i32.mul (local.get $yy) (local.get $ksize)) (i32.const 2))))
        (local.set $o (i32.add (local.get $out) (i32.mul (local.get $yy) (local.get $row))))
        (local.set $i (i32.const 0))
        (loop $chunks
          (local.set $a0 (i32x4.splat (i32.const 2097152)))
          (local.set $a1 (local.get $a0))
          (local.set $a2 (local.get $a0))
          (local.set $a3 (local.get $a0))
          (local.set $p (i32.add (local.get $first) (local.get $i)))
          (local.set $t (i32.const 0))
          (block $tapsDone
            (br_if $tapsDone (i32.le_s (local.get $taps) (i32.const 0)))
            (loop $tap
              (local.set $w (i32x4.splat (i32.load (i32.add (local.get $weights) (i32.shl (local.get $t) (i32.const 2))))))
              (local.set $v (v128.load (local.get $p)))
              (local.set $lo (i16x8.extend_low_i8x16_u (local.get $v)))
              (local.set $hi (i16x8.extend_high_i8x16_u (local.get $v)))
              (local.set $a0 (i32x4.add (local.get $a0) (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $lo)) (local.get $w))))
              (local.set $a1 (i32x4.add (local.get $a1) (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $lo)) (local.get $w))))
              (local.set $a2 (i32x4.add (local.get $a2) (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $hi)) (local.get $w))))
              (local.set $a3 (i32x4.add (local.get $a3) (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $hi)) (local.get $w))))
              (local.set $p (i32.add (local.get $p) (local.get $row)))
              (local.set $t (i32.add (local.get $t) (i32.const 1)))
              (br_if $tap (i32.lt_s (local.get $t) (local.get $taps)))))
          ;; >> 22, then saturate to int16 and to uint8: Pillow's clip8
          (v128.store (i32.add (local.get $o) (local.get $i))
            (i8x16.narrow_i16x8_u
              (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $a0) (i32.const 22)) (i32x4.shr_s (local.get $a1) (i32.const 22)))
              (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $a2) (i32.const 22)) (i32x4.shr_s (local.get $a3) (i32.const 22)))))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br_if $chunks (i32.lt_s (local.get $i) (local.get $row))))
        (local.set $yy (i32.add (local.get $yy) (i32.const 1)))
        (br_if $rows (i32.lt_s (local.get $yy) (local.get $outRows))))))

  ;; dst[x][y] = src[y][x] for pixels of c bytes: rows of src (w pixels) become columns of dst
  ;; (rows of h pixels), so that a pass along src's rows is a convolveRows over dst. Done in bands
  ;; of 32 source rows, so that dst is written 32 pixels at a time.
  (func (export "transpose")
    (param $src i32) (param $w i32) (param $h i32) (param $c i32) (param $dst i32)
    (local $y0 i32) (local $y1 i32) (local $x i32) (local $y i32) (local $k i32)
    (local $s i32) (local $d i32) (local $srcRow i32) (local $dstRow i32)
    (local.set $srcRow (i32.mul (local.get $w) (local.get $c)))
    (local.set $dstRow (i32.mul (local.get $h) (local.get $c)))
    (block $done
      (br_if $done (i32.or (i32.le_s (local.get $w) (i32.const 0)) (i32.le_s (local.get $h) (i32.const 0))))
      (loop $bands
        (local.set $y1 (i32.add (local.get $y0) (i32.const 32)))
        (if (i32.gt_s (local.get $y1) (local.get $h)) (then (local.set $y1 (local.get $h))))
        (local.set $x (i32.const 0))
        (loop $columns
          (local.set $y (local.get $y0))
          (local.set $s (i32.add (local.get $src) (i32.add (i32.mul (local.get $y0) (local.get $srcRow)) (i32.mul (local.get $x) (local.get $c)))))
          (local.set $d (i32.add (local.get $dst) (i32.add (i32.mul (local.get $x) (local.get $dstRow)) (i32.mul (local.get $y0) (local.get $c)))))
          (if (i32.eq (local.get $c) (i32.const 3))
            (then
              ;; RGB, the usual case: one 2-byte and one 1-byte copy a pixel
              (loop $rgb
                (i32.store16 (local.get $d) (i32.load16_u (local.get $s)))
                (i32.store8 offset=2 (local.get $d) (i32.load8_u offset=2 (local.get $s)))
                (local.set $s (i32.add (local.get $s) (local.get $srcRow)))
                (local.set $d (i32.add (local.get $d) (i32.const 3)))
                (local.set $y (i32.add (local.get $y) (i32.const 1)))
                (br_if $rgb (i32.lt_s (local.get $y) (local.get $y1)))))
            (else
              (loop $pixels
                (local.set $k (i32.const 0))
                (loop $bytes
                  (i32.store8 (i32.add (local.get $d) (local.get $k)) (i32.load8_u (i32.add (local.get $s) (local.get $k))))
                  (local.set $k (i32.add (local.get $k) (i32.const 1)))
                  (br_if $bytes (i32.lt_s (local.get $k) (local.get $c))))
                (local.set $s (i32.add (local.get $s) (local.get $srcRow)))
                (local.set $d (i32.add (local.get $d) (local.get $c)))
                (local.set $y (i32.add (local.get $y) (i32.const 1)))
                (br_if $pixels (i32.lt_s (local.get $y) (local.get $y1))))))
          (local.set $x (i32.add (local.get $x) (i32.const 1)))
          (br_if $columns (i32.lt_s (local.get $x) (local.get $w))))
        (local.set $y0 (local.get $y1))
        (br_if $bands (i32.lt_s (local.get $y0) (local.get $h)))))))
