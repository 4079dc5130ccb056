using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// <c>C (M x N) = A (M x K, float) x W^T</c> for 4-bit block-quantized weights (<see cref="PackedInt4Matrix"/>),
/// dequantizing on the fly: per block, the nibbles meet A as floats, the block's dot product is scaled once,
/// and the zero point enters through A's block sum, <c>scale x (q . a - zp x sum(a))</c>. Memory traffic is the
/// packed weights (a quarter of int8's... an eighth of float's), which is what makes single-row products fast.
/// Work is split over columns; every element is summed in one fixed order, whatever the thread count.
/// </summary>
public static class Int4Gemm
{
    /// <summary>Computes C = A x W^T (+ <paramref name="bias"/>).</summary>
    /// <param name="a">A, M x K row-major.</param>
    /// <param name="rows">M.</param>
    /// <param name="b">The 4-bit weights.</param>
    /// <param name="c">C, M x N row-major; overwritten.</param>
    /// <param name="bias">Empty, or N values.</param>
    /// <param name="degreeOfParallelism">Threads to use; 1 runs on the calling thread only.</param>
    public static void Multiply(ReadOnlySpan<float> a, int rows, PackedInt4Matrix b, Span<float> c, ReadOnlySpan<float> bias = default, int degreeOfParallelism = 1) =>
        Run(a, rows, b, c, bias, degreeOfParallelism, Best);

    /// <summary>The same product through the scalar twin of the block kernel.</summary>
    internal static void MultiplyScalar(ReadOnlySpan<float> a, int rows, PackedInt4Matrix b, Span<float> c, int degreeOfParallelism = 1) =>
        Run(a, rows, b, c, default, degreeOfParallelism, Int4Kernel.Scalar);

    /// <summary>The same product on a given kernel (tests run each one this CPU has).</summary>
    internal static void MultiplyWith(Int4Kernel kernel, ReadOnlySpan<float> a, int rows, PackedInt4Matrix b, Span<float> c) =>
        Run(a, rows, b, c, default, 1, kernel);

    /// <summary>The widest block kernel this CPU runs.</summary>
    internal static Int4Kernel Best => Avx512F.IsSupported ? Int4Kernel.Avx512 : Avx2.IsSupported && Fma.IsSupported ? Int4Kernel.Avx2 : Int4Kernel.Scalar;

    private static unsafe void Run(ReadOnlySpan<float> a, int rows, PackedInt4Matrix b, Span<float> c, ReadOnlySpan<float> bias, int degreeOfParallelism, Int4Kernel kernel)
    {
        int k = b.Depth, n = b.Columns, bs = b.BlockSize, blocks = b.BlocksPerColumn;
        if (a.Length < (long)rows * k) throw new ArgumentException($"A needs {(long)rows * k} values, not {a.Length}.", nameof(a));
        if (c.Length < (long)rows * n) throw new ArgumentException($"C needs {(long)rows * n} values, not {c.Length}.", nameof(c));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"The bias needs {n} values.", nameof(bias));

        // A, split into even and odd K (the low and high nibbles' partners), zero-padded to whole blocks,
        // and each block's sum for the zero-point term.
        int padded = blocks * bs;
        float[] split = ArrayPool<float>.Shared.Rent(rows * padded + 16);
        float[] sums = ArrayPool<float>.Shared.Rent(rows * blocks);
        try
        {
            fixed (float* splitStart = split, psums = sums, pscales = b.Scales, pzeros = b.ZeroPoints, pc = c)
            fixed (byte* pb = b.Data)
            {
                // A's rows from a cache line on: a 64-byte load across two lines costs two. The 1 x 4096 x 4096 product
                // took 1047 or 1267 us by where the rented array happened to start.
                int offset = CacheLineStorage.LineOffset(splitStart);
                float* ps = splitStart + offset;
                for (int r = 0; r < rows; r++)
                    PrepareRow(a.Slice(r * k, k), split.AsSpan(offset + r * padded, padded), sums.AsSpan(r * blocks, blocks), bs);

                // The 512-bit kernel takes sixteen nibble pairs a step, so blocks of at least 32.
                if (kernel == Int4Kernel.Avx512 && bs % 32 != 0) kernel = Int4Kernel.Avx2;
                var job = new Job(ps, psums, pb, pscales, pzeros, pc, rows, n, bs, blocks, padded, kernel);
                int parts = Math.Clamp(degreeOfParallelism, 1, Math.Max(1, n / 16));
                if (parts == 1)
                {
                    job.Columns(0, n);
                }
                else
                {
                    IntraOpThreads.For(parts, parts, part =>
                    {
                        var (start, end) = GemmDriver<FloatKernelPortable, float, float, float>.Share(n, parts, part);
                        job.Columns(start, end);
                    });
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(split);
            ArrayPool<float>.Shared.Return(sums);
        }

        if (!bias.IsEmpty)
        {
            for (int r = 0; r < rows; r++)
                System.Numerics.Tensors.TensorPrimitives.Add(c.Slice(r * n, n), bias, c.Slice(r * n, n));
        }
    }

    /// <summary>Per block of A: even K values then odd K values, and the block's sum.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void PrepareRow(ReadOnlySpan<float> row, Span<float> split, Span<float> sums, int bs)
    {
        split.Clear();
        int half = bs / 2;
        for (int k = 0; k < row.Length; k++)
        {
            int block = k / bs, within = k % bs;
            split[block * bs + (within & 1) * half + within / 2] = row[k];
        }
        for (int block = 0; block < sums.Length; block++)
        {
            double sum = 0;
            foreach (float v in split.Slice(block * bs, bs)) sum += v;
            sums[block] = (float)sum;
        }
    }

    private readonly unsafe struct Job(float* split, float* sums, byte* weights, float* scales, float* zeros, float* c,
        int rows, int n, int bs, int blocks, int padded, Int4Kernel kernel)
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
        public void Columns(int start, int end)
        {
            int blockBytes = bs / 2;
            for (int column = start; column < end; column++)
            {
                byte* w = weights + (long)column * blocks * blockBytes;
                float* scale = scales + (long)column * blocks;
                float* zero = zeros + (long)column * blocks;
                for (int r = 0; r < rows; r++)
                {
                    c[(long)r * n + column] = kernel switch
                    {
                        Int4Kernel.Avx512 => DotAvx512(split + (long)r * padded, sums + (long)r * blocks, w, scale, zero, blocks, bs),
                        Int4Kernel.Avx2 => DotAvx2(split + (long)r * padded, sums + (long)r * blocks, w, scale, zero, blocks, bs),
                        _ => DotScalar(split + (long)r * padded, sums + (long)r * blocks, w, scale, zero, blocks, bs),
                    };
                }
            }
        }
    }

    /// <summary>
    /// One column's dot product: per block, nibbles x A in float, then <c>scale x (dot - zp x sum(a))</c>. Even and odd
    /// blocks add into separate totals and the zero-point terms are summed apart: a single running total made every
    /// block wait for the previous block's multiply-add (a block of 32 is only two steps of work).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float DotAvx2(float* a, float* sums, byte* w, float* scale, float* zero, int blocks, int bs)
    {
        int half = bs / 2;
        var mask = Vector128.Create((byte)0x0F);
        var totals = (Even: Vector256<float>.Zero, Odd: Vector256<float>.Zero);
        for (int block = 0; block < blocks; block++)
        {
            var dot0 = Vector256<float>.Zero;
            var dot1 = Vector256<float>.Zero;
            float* even = a + block * bs;
            float* odd = even + half;
            // 8 bytes = 16 values per step: 8 low nibbles (even K) and 8 high nibbles (odd K).
            for (int i = 0; i < half; i += 8)
            {
                var bytes = Vector128.CreateScalar(*(ulong*)(w + i)).AsByte();
                var low = Avx2.ConvertToVector256Int32(bytes & mask);
                var high = Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & mask);
                dot0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(low), Avx.LoadVector256(even + i), dot0);
                dot1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(high), Avx.LoadVector256(odd + i), dot1);
            }
            var scaled = Avx.Add(dot0, dot1);
            if ((block & 1) == 0) totals.Even = Fma.MultiplyAdd(scaled, Vector256.Create(scale[block]), totals.Even);
            else totals.Odd = Fma.MultiplyAdd(scaled, Vector256.Create(scale[block]), totals.Odd);
            w += half;
        }
        return Vector256.Sum(Avx.Add(totals.Even, totals.Odd)) - ZeroPointTerm(scale, zero, sums, blocks);
    }

    /// <summary>Sum over blocks of <c>scale x zero point x sum(a)</c>, eight blocks at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe float ZeroPointTerm(float* scale, float* zero, float* sums, int blocks)
    {
        var vector = Vector256<float>.Zero;
        int block = 0;
        for (; block <= blocks - 8; block += 8)
            vector = Fma.MultiplyAdd(Avx.Multiply(Avx.LoadVector256(scale + block), Avx.LoadVector256(zero + block)), Avx.LoadVector256(sums + block), vector);
        float term = Vector256.Sum(vector);
        for (; block < blocks; block++) term += scale[block] * zero[block] * sums[block];
        return term;
    }

    /// <summary><see cref="DotAvx2"/> sixteen lanes wide: 16 bytes (32 values) a step, so one step per block of 32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float DotAvx512(float* a, float* sums, byte* w, float* scale, float* zero, int blocks, int bs)
    {
        int half = bs / 2;
        var mask = Vector128.Create((byte)0x0F);
        var totals = (Even: Vector512<float>.Zero, Odd: Vector512<float>.Zero);
        for (int block = 0; block < blocks; block++)
        {
            var dot0 = Vector512<float>.Zero;
            var dot1 = Vector512<float>.Zero;
            float* even = a + block * bs;
            float* odd = even + half;
            for (int i = 0; i < half; i += 16)
            {
                var bytes = Sse2.LoadVector128(w + i);
                var low = Avx512F.ConvertToVector512Int32(bytes & mask);
                var high = Avx512F.ConvertToVector512Int32(Sse2.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & mask);
                dot0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(low), Avx512F.LoadVector512(even + i), dot0);
                dot1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(high), Avx512F.LoadVector512(odd + i), dot1);
            }
            var scaled = Avx512F.Add(dot0, dot1);
            if ((block & 1) == 0) totals.Even = Avx512F.FusedMultiplyAdd(scaled, Vector512.Create(scale[block]), totals.Even);
            else totals.Odd = Avx512F.FusedMultiplyAdd(scaled, Vector512.Create(scale[block]), totals.Odd);
            w += half;
        }
        return Vector512.Sum(Avx512F.Add(totals.Even, totals.Odd)) - ZeroPointTerm(scale, zero, sums, blocks);
    }

    /// <summary>The scalar twin of <see cref="DotAvx2"/>: the same per-block formula, one value at a time.</summary>
    private static unsafe float DotScalar(float* a, float* sums, byte* w, float* scale, float* zero, int blocks, int bs)
    {
        int half = bs / 2;
        float total = 0, correction = 0;
        for (int block = 0; block < blocks; block++)
        {
            float dot = 0;
            float* even = a + block * bs;
            float* odd = even + half;
            for (int i = 0; i < half; i++)
            {
                dot = MathF.FusedMultiplyAdd(w[i] & 0x0F, even[i], dot);
                dot = MathF.FusedMultiplyAdd(w[i] >> 4, odd[i], dot);
            }
            total = MathF.FusedMultiplyAdd(dot, scale[block], total);
            correction += scale[block] * zero[block] * sums[block];
            w += half;
        }
        return total - correction;
    }
}

/// <summary>The block kernels of <see cref="Int4Gemm"/>.</summary>
internal enum Int4Kernel
{
    Scalar,
    Avx2,
    Avx512,
}
