using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Gemm;

/// <summary>The output stages of <see cref="Int8Gemm"/>, each one pass over the int32 accumulators.</summary>
internal static class Int8OutputStage
{
    /// <summary>
    /// Turns what the kernel summed into <c>(A - zpA) x (B - zpB)</c>.
    /// Pairs16: the kernel summed <c>(A - zpA) x B</c>; subtract <c>zpB[n] x sum_k (A[m,k] - zpA)</c>.
    /// Quads: the kernel summed <c>Au x Bsafe</c> over A as uint8 (<c>Au</c>, int8 A flipped by +128) and B as
    /// int8 minus its corrections; add the corrections, then expand the zero points:
    /// <c>sum Au B - zA sum B - zB[n] sum Au + K zA zB[n]</c>, all in wrapping int32, exact whenever the result fits.
    /// A kernel that multiplied <c>Au - shiftA</c> (the ARM dot-product kernel, int8 x int8) is compensated per column.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static unsafe void ApplyZeroPointsAndCorrections(Span<int> c, ReadOnlySpan<byte> a, int rows, int depth, int zeroPointA, bool signedA, PackedInt8Matrix b,
        int shiftA = 0, int threads = 1)
    {
        if (b.Correction is null && ParallelRanges.Parts(rows, b.Columns + depth, threads) > 1)
        {
            // Rows are independent (the sparse corrections, when present, work on the whole matrix and stay on one thread).
            int n0 = b.Columns;
            fixed (int* pc = c)
            fixed (byte* pa = a)
            {
                nint cs = (nint)pc, source = (nint)pa;
                ParallelRanges.For(rows, n0 + depth, threads, (start, end) => ApplyZeroPointsAndCorrections(
                    new Span<int>((int*)cs + (long)start * n0, (end - start) * n0), new ReadOnlySpan<byte>((byte*)source + (long)start * depth, (end - start) * depth),
                    end - start, depth, zeroPointA, signedA, b, shiftA, 1));
            }
            return;
        }

        int n = b.Columns;
        int[] zb = b.StoredZeroPoints;
        if (b.Format == Int8PackFormat.Pairs16)
        {
            bool any = false;
            foreach (int zp in zb) any |= zp != 0;
            if (!any) return;
            for (int m = 0; m < rows; m++)
            {
                int sum = RowSum(a.Slice(m * depth, depth), signedA) - zeroPointA * depth;
                var cRow = c.Slice(m * n, n);
                for (int j = 0; j < n; j++) cRow[j] -= zb[j] * sum;
            }
            return;
        }

        int flip = signedA ? 128 : 0;
        int za = zeroPointA + flip;
        int[] columnSums = b.StoredColumnSums;
        // Per column: K zA zB[n] - zA sum B[n]; per row, minus zB[n] sum Au[m].
        int[]? kernelSums = shiftA != 0 ? b.KernelColumnSums : null;
        var perColumn = new int[n];
        bool anyZb = false;
        for (int j = 0; j < n; j++)
        {
            // A kernel that subtracted shiftA from Au summed shiftA x sum(Bkernel) too little.
            perColumn[j] = ColumnTerm(depth, za, zb[j], columnSums[j]) + (kernelSums is null ? 0 : shiftA * kernelSums[j]);
            anyZb |= zb[j] != 0;
        }
        for (int m = 0; m < rows; m++)
        {
            var cRow = c.Slice(m * n, n);
            if (anyZb)
            {
                int rowSum = RowSum(a.Slice(m * depth, depth), signedA) + flip * depth;
                AddScaled(cRow, perColumn, zb, -rowSum);
            }
            else
            {
                AddScaled(cRow, perColumn, perColumn, 0);
            }
        }
        if (b.Correction is { } correction) AddCorrection(c, a, rows, depth, signedA, n, correction);
    }

    /// <summary>
    /// Adds <c>Au x E</c> for the sparse corrections E. A is transposed once (K x M, as int32) so that each
    /// correction entry is one vector multiply-add along M into that column's sums; the sums of a 16-column
    /// panel are then added into C row by row (whole cache lines, not strided columns).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static unsafe void AddCorrection(Span<int> c, ReadOnlySpan<byte> a, int rows, int depth, bool signedA, int n, SparseCorrection correction)
    {
        const int width = PackedInt8Matrix.PanelWidth;
        const int tile = 64;
        int flip = signedA ? 128 : 0;
        int[] transposedArray = System.Buffers.ArrayPool<int>.Shared.Rent(depth * rows);
        int[] sumsArray = System.Buffers.ArrayPool<int>.Shared.Rent(width * rows);
        try
        {
            fixed (byte* pa = a)
            fixed (int* transposed = transposedArray, sums = sumsArray, pc = c)
            fixed (int* starts = correction.ColumnStarts, entryRows = correction.Rows, values = correction.Values)
            {
                // Tiled along K so that the strided writes stay within a few cache lines.
                for (int k0 = 0; k0 < depth; k0 += tile)
                {
                    int k1 = Math.Min(depth, k0 + tile);
                    for (int m = 0; m < rows; m++)
                    {
                        byte* row = pa + (long)m * depth;
                        for (int k = k0; k < k1; k++)
                            transposed[(long)k * rows + m] = (signedA ? (sbyte)row[k] : row[k]) + flip;
                    }
                }

                for (int j0 = 0; j0 < n; j0 += width)
                {
                    int columns = Math.Min(width, n - j0);
                    if (starts[j0] == starts[j0 + columns]) continue;
                    new Span<int>(sums, width * rows).Clear();
                    for (int jj = 0; jj < columns; jj++)
                    {
                        int* target = sums + jj * rows;
                        for (int e = starts[j0 + jj]; e < starts[j0 + jj + 1]; e++)
                            MultiplyAdd(transposed + (long)entryRows[e] * rows, values[e], target, rows);
                    }
                    for (int m = 0; m < rows; m++)
                    {
                        int* cRow = pc + (long)m * n + j0;
                        for (int jj = 0; jj < columns; jj++) cRow[jj] += sums[jj * rows + m];
                    }
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<int>.Shared.Return(transposedArray);
            System.Buffers.ArrayPool<int>.Shared.Return(sumsArray);
        }
    }

    /// <summary><c>c += constant + scale * factor</c>, vectorized.</summary>
    private static void AddScaled(Span<int> c, ReadOnlySpan<int> constant, ReadOnlySpan<int> scale, int factor)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var f = Vector256.Create(factor);
            ref int cs = ref MemoryMarshal.GetReference(c);
            ref int ks = ref MemoryMarshal.GetReference(constant);
            ref int ss = ref MemoryMarshal.GetReference(scale);
            for (; i + 8 <= c.Length; i += 8)
            {
                var value = Vector256.LoadUnsafe(ref cs, (nuint)i) + Vector256.LoadUnsafe(ref ks, (nuint)i) + Vector256.LoadUnsafe(ref ss, (nuint)i) * f;
                value.StoreUnsafe(ref cs, (nuint)i);
            }
        }
        for (; i < c.Length; i++) c[i] += constant[i] + scale[i] * factor;
    }

    /// <summary><c>sums[0..count) += x[0..count) * factor</c>, vectorized.</summary>
    private static unsafe void MultiplyAdd(int* x, int factor, int* sums, int count)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var f = Vector256.Create(factor);
            for (; i + 8 <= count; i += 8)
                Vector256.Store(Vector256.Load(sums + i) + Vector256.Load(x + i) * f, sums + i);
        }
        for (; i < count; i++) sums[i] += x[i] * factor;
    }

    /// <summary>The sum of a row of A: <c>vpsadbw</c> against zero adds 32 bytes at a time (int8 A is flipped to uint8 and the flip taken back).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    internal static int RowSum(ReadOnlySpan<byte> row, bool signed)
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported || row.Length < 32) return RowSumScalar(row, signed);
        ref byte start = ref MemoryMarshal.GetReference(row);
        var flip = System.Runtime.Intrinsics.Vector256.Create(signed ? (byte)0x80 : (byte)0);
        var total = System.Runtime.Intrinsics.Vector256<ulong>.Zero;
        int i = 0;
        for (; i <= row.Length - 32; i += 32)
        {
            var bytes = System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref start, (nuint)i) ^ flip;
            total += System.Runtime.Intrinsics.X86.Avx2.SumAbsoluteDifferences(bytes, System.Runtime.Intrinsics.Vector256<byte>.Zero).AsUInt64();
        }
        long sum = (long)(total[0] + total[1] + total[2] + total[3]);
        for (; i < row.Length; i++) sum += row[i] ^ (signed ? 0x80 : 0);
        return (int)(signed ? sum - 128L * row.Length : sum);
    }

    /// <summary>The scalar twin of <see cref="RowSum"/>.</summary>
    internal static int RowSumScalar(ReadOnlySpan<byte> row, bool signed)
    {
        int sum = 0;
        if (signed)
        {
            foreach (sbyte v in MemoryMarshal.Cast<byte, sbyte>(row)) sum += v;
        }
        else
        {
            foreach (byte v in row) sum += v;
        }
        return sum;
    }

    /// <summary>C = float(acc) x (scaleA x scaleB[n]) + bias[n].</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static unsafe void ToFloat(ReadOnlySpan<int> accumulators, int rows, int n, float scaleA, ReadOnlySpan<float> scaleB, ReadOnlySpan<float> bias, Span<float> c, int threads = 1)
    {
        var (scales, offsets) = ColumnScales(scaleA, scaleB, bias, n);
        fixed (int* pa = accumulators)
        fixed (float* pc = c)
        {
            nint source = (nint)pa, target = (nint)pc;
            var zeros = new int[n];
            ParallelRanges.For(rows, n, threads, (start, end) =>
            {
                for (int m = start; m < end; m++)
                    ToFloatRow(new ReadOnlySpan<int>((int*)source + (long)m * n, n), zeros, zeros, 0, scales, offsets, new Span<float>((float*)target + (long)m * n, n));
            });
        }
    }

    /// <summary>
    /// <see cref="ApplyZeroPointsAndCorrections"/> (for uint8 A, no sparse corrections, unshifted kernels) and
    /// <see cref="ToFloat"/> in one pass: per element the same wrapping integer additions, then the same float multiply-add.
    /// </summary>
    public static unsafe void ToFloatWithZeroPoints(ReadOnlySpan<int> accumulators, ReadOnlySpan<byte> a, int rows, int depth, int zeroPointA, PackedInt8Matrix b,
        float scaleA, ReadOnlySpan<float> scaleB, ReadOnlySpan<float> bias, Span<float> c, int threads)
    {
        if (b.Correction is not null) throw new ArgumentException("Weights with sparse corrections take the two-pass stages.", nameof(b));
        int n = b.Columns;
        int[] zb = b.StoredZeroPoints;
        bool anyZb = false;
        foreach (int zp in zb) anyZb |= zp != 0;
        // Per column an integer constant, per row a factor times zB[n]: Quads add K zA zB - zA sum B and take zB x sum A;
        // Pairs16 take zB x (sum A - K zA).
        var constant = new int[n];
        bool quads = b.Format != Int8PackFormat.Pairs16;
        if (quads)
        {
            int[] columnSums = b.StoredColumnSums;
            for (int j = 0; j < n; j++) constant[j] = ColumnTerm(depth, zeroPointA, zb[j], columnSums[j]);
        }
        var (scales, offsets) = ColumnScales(scaleA, scaleB, bias, n);
        fixed (int* pacc = accumulators)
        fixed (byte* pa = a)
        fixed (float* pc = c)
        {
            nint source = (nint)pacc, activations = (nint)pa, target = (nint)pc;
            ParallelRanges.For(rows, n + depth, threads, (start, end) =>
            {
                for (int m = start; m < end; m++)
                {
                    int factor = 0;
                    if (anyZb)
                    {
                        int rowSum = RowSum(new ReadOnlySpan<byte>((byte*)activations + (long)m * depth, depth), signed: false);
                        factor = quads ? -rowSum : -(rowSum - zeroPointA * depth);
                    }
                    ToFloatRow(new ReadOnlySpan<int>((int*)source + (long)m * n, n), constant, zb, factor, scales, offsets, new Span<float>((float*)target + (long)m * n, n));
                }
            });
        }
    }

    /// <summary>
    /// The terms of the VNNI kernels' in-register output stage (<see cref="Jit.Int8VnniTerms"/>): the same integers as
    /// <see cref="ApplyZeroPointsAndCorrections"/> for weights without corrections and an unshifted kernel, and for
    /// <see cref="Jit.Int8VnniStage.Float"/> the same column scales and offsets as <see cref="ToFloat"/>.
    /// </summary>
    internal static Jit.Int8VnniTerms VnniTerms(Jit.Int8VnniStage stage, ReadOnlySpan<byte> a, int rows, int depth, int zeroPointA, bool signedA,
        PackedInt8Matrix b, float scaleA = 0, ReadOnlySpan<float> scaleB = default, ReadOnlySpan<float> bias = default)
    {
        if (b.Correction is not null || b.Format != Int8PackFormat.Quads) throw new ArgumentException("Only quads without corrections.", nameof(b));
        int n = b.Columns, flip = signedA ? 128 : 0, za = zeroPointA + flip;
        var columns = b.VnniColumns;
        if (columns is null || columns.ZeroPointA != za)
        {
            int[] zb = b.StoredZeroPoints, sums = b.StoredColumnSums;
            var columnTerms = new int[Jit.Int8VnniColumns.PaddedLength(n)];
            var zeroPoints = new int[columnTerms.Length];
            bool anyZb = false;
            for (int j = 0; j < n; j++)
            {
                columnTerms[j] = ColumnTerm(b.Depth, za, zb[j], sums[j]);
                zeroPoints[j] = zb[j];
                anyZb |= zb[j] != 0;
            }
            columns = new Jit.Int8VnniColumns(za, columnTerms, zeroPoints, anyZb);
            b.VnniColumns = columns;
        }
        var terms = new Jit.Int8VnniTerms(stage, columns, rows);
        if (columns.HasZeroPointsB)
        {
            for (int m = 0; m < rows; m++) terms.RowFactors[m] = -(RowSum(a.Slice(m * depth, depth), signedA) + flip * depth);
        }
        if (stage == Jit.Int8VnniStage.Float) ColumnScales(scaleA, scaleB, bias, n, terms.Scales, terms.Offsets);
        return terms;
    }

    /// <summary>
    /// The part of <c>sum over K of (a - zA)(b - zB)</c> beyond <c>sum a b</c> that depends on the column only:
    /// <c>K zA zB - zA sum b</c> (the row's part is <c>-zB sum a</c>). Wrapping int32 arithmetic, as the accumulators.
    /// </summary>
    private static int ColumnTerm(int depth, int zeroPointA, int zeroPointB, int columnSum) =>
        unchecked(depth * zeroPointA * zeroPointB - zeroPointA * columnSum);

    /// <summary>Per column: scaleA x scaleB[n] and the bias (one value or N of each).</summary>
    private static (float[] Scales, float[] Offsets) ColumnScales(float scaleA, ReadOnlySpan<float> scaleB, ReadOnlySpan<float> bias, int n)
    {
        var scales = new float[n];
        var offsets = new float[n];
        ColumnScales(scaleA, scaleB, bias, n, scales, offsets);
        return (scales, offsets);
    }

    /// <summary>The same into the first N values of <paramref name="scales"/> and <paramref name="offsets"/>.</summary>
    private static void ColumnScales(float scaleA, ReadOnlySpan<float> scaleB, ReadOnlySpan<float> bias, int n, Span<float> scales, Span<float> offsets)
    {
        for (int j = 0; j < n; j++)
        {
            scales[j] = scaleA * (scaleB.Length == 1 ? scaleB[0] : scaleB[j]);
            offsets[j] = bias.IsEmpty ? 0f : bias.Length == 1 ? bias[0] : bias[j];
        }
    }

    /// <summary>One row: <c>c[j] = (float)(acc[j] + constant[j] + zb[j] x factor) x scales[j] + offsets[j]</c>.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void ToFloatRow(ReadOnlySpan<int> acc, int[] constant, int[] zb, int factor, float[] scales, float[] offsets, Span<float> c)
    {
        int n = acc.Length, j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var f = Vector256.Create(factor);
            ref int accRef = ref MemoryMarshal.GetReference(acc);
            ref float outRef = ref MemoryMarshal.GetReference(c);
            for (; j + 8 <= n; j += 8)
            {
                var sum = Vector256.LoadUnsafe(ref accRef, (nuint)j) + Vector256.LoadUnsafe(ref constant[0], (nuint)j) + Vector256.LoadUnsafe(ref zb[0], (nuint)j) * f;
                var value = Vector256.ConvertToSingle(sum) * Vector256.LoadUnsafe(ref scales[0], (nuint)j) + Vector256.LoadUnsafe(ref offsets[0], (nuint)j);
                value.StoreUnsafe(ref outRef, (nuint)j);
            }
        }
        for (; j < n; j++) c[j] = (acc[j] + constant[j] + zb[j] * factor) * scales[j] + offsets[j];
    }

    /// <summary>C = saturate(zpC + multiplier[n](acc + bias[n])).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static void Requantize(ReadOnlySpan<int> accumulators, int rows, int n, ReadOnlySpan<FixedPointMultiplier> multipliers, ReadOnlySpan<int> bias,
        int zeroPointC, QuantizedRange range, Span<byte> c)
    {
        for (int m = 0; m < rows; m++)
        {
            for (int j = 0; j < n; j++)
            {
                int acc = accumulators[m * n + j] + (bias.IsEmpty ? 0 : bias[j]);
                var multiplier = multipliers.Length == 1 ? multipliers[0] : multipliers[j];
                int value = Math.Clamp(zeroPointC + multiplier.Apply(acc), range.Min, range.Max);
                c[m * n + j] = (byte)value; // int8 results keep their two's-complement byte
            }
        }
    }
}
