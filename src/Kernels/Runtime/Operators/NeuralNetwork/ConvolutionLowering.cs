using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quantize.Kernels.Gemm;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// How Conv and ConvTranspose become GEMMs on <see cref="FloatGemm"/>: the image goes channels-last
/// (NHWC) so a window's channels are contiguous, each output pixel's window becomes one row of a patch
/// matrix (taps outer, channels inner), and the GEMM's pixels x channels result goes back to NCHW.
/// </summary>
internal static class ConvolutionLowering
{
    /// <summary>
    /// Packs group <paramref name="group"/> of Conv weights W [M, Cg, taps] as the GEMM's B: K = taps x Cg rows
    /// (tap-major, matching <see cref="BuildPatches{T}"/>), Mg columns.
    /// </summary>
    public static PackedFloatMatrix PackConvWeights(ReadOnlySpan<float> w, int group, int outputsPerGroup, int channelsPerGroup, int taps)
    {
        int k = taps * channelsPerGroup;
        var rows = new float[outputsPerGroup * k];
        for (int m = 0; m < outputsPerGroup; m++)
        {
            var source = w.Slice((group * outputsPerGroup + m) * k, k);
            var target = rows.AsSpan(m * k, k);
            for (int c = 0; c < channelsPerGroup; c++)
            {
                for (int t = 0; t < taps; t++) target[t * channelsPerGroup + c] = source[c * taps + t];
            }
        }
        return PackedFloatMatrix.Pack(rows, k, outputsPerGroup, transposed: true);
    }

    /// <summary>Writes <paramref name="source"/> (rows x columns) transposed into <paramref name="target"/> (columns x rows, row stride <paramref name="targetStride"/>), in cache-sized tiles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transpose<T>(ReadOnlySpan<T> source, int rows, int columns, Span<T> target, int targetStride)
        where T : unmanaged
    {
        if (Unsafe.SizeOf<T>() == 1 && Sse2.IsSupported)
        {
            TransposeBytes(MemoryMarshal.AsBytes(source), rows, columns, MemoryMarshal.AsBytes(target), targetStride);
            return;
        }
        if (Unsafe.SizeOf<T>() == 4 && Avx.IsSupported)
        {
            TransposeWords(MemoryMarshal.Cast<T, float>(source), rows, columns, MemoryMarshal.Cast<T, float>(target), targetStride);
            return;
        }
        TransposeScalar(source, rows, columns, target, targetStride);
    }

    /// <summary>The scalar twin of <see cref="Transpose{T}"/> (and its edges).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void TransposeScalar<T>(ReadOnlySpan<T> source, int rows, int columns, Span<T> target, int targetStride)
        where T : unmanaged
    {
        // Tiles of a cache line or two per row: 16 floats, 32 bytes.
        int tile = Unsafe.SizeOf<T>() == 1 ? 32 : 16;
        for (int r0 = 0; r0 < rows; r0 += tile)
        {
            int r1 = Math.Min(rows, r0 + tile);
            for (int c0 = 0; c0 < columns; c0 += tile)
            {
                int c1 = Math.Min(columns, c0 + tile);
                for (int c = c0; c < c1; c++)
                {
                    var row = target.Slice(c * targetStride);
                    for (int r = r0; r < r1; r++) row[r] = source[r * columns + c];
                }
            }
        }
    }

    /// <summary>
    /// Bytes in blocks of 8 x 8: eight 8-byte row loads, three rounds of interleaving (bytes, 16-bit pairs, 32-bit quads),
    /// eight 8-byte stores, instead of 64 single bytes each way (the 8-bit convolutions' results back to NCHW). The rows
    /// and columns left over are moved one by one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void TransposeBytes(ReadOnlySpan<byte> source, int rows, int columns, Span<byte> target, int targetStride)
    {
        CheckBlockTranspose(source.Length, rows, columns, target.Length, targetStride);
        int fullRows = rows & ~7, fullColumns = columns & ~7;
        fixed (byte* src = source, dst = target)
        {
            for (int r = 0; r < fullRows; r += 8)
            {
                for (int c = 0; c < fullColumns; c += 8)
                {
                    byte* from = src + (long)r * columns + c;
                    var t0 = Sse2.UnpackLow(Row(from, 0, columns), Row(from, 1, columns));
                    var t1 = Sse2.UnpackLow(Row(from, 2, columns), Row(from, 3, columns));
                    var t2 = Sse2.UnpackLow(Row(from, 4, columns), Row(from, 5, columns));
                    var t3 = Sse2.UnpackLow(Row(from, 6, columns), Row(from, 7, columns));
                    var u0 = Sse2.UnpackLow(t0.AsUInt16(), t1.AsUInt16()).AsUInt32();
                    var u1 = Sse2.UnpackHigh(t0.AsUInt16(), t1.AsUInt16()).AsUInt32();
                    var u2 = Sse2.UnpackLow(t2.AsUInt16(), t3.AsUInt16()).AsUInt32();
                    var u3 = Sse2.UnpackHigh(t2.AsUInt16(), t3.AsUInt16()).AsUInt32();
                    byte* to = dst + (long)c * targetStride + r;
                    Store(Sse2.UnpackLow(u0, u2).AsUInt64(), to, targetStride);
                    Store(Sse2.UnpackHigh(u0, u2).AsUInt64(), to + 2L * targetStride, targetStride);
                    Store(Sse2.UnpackLow(u1, u3).AsUInt64(), to + 4L * targetStride, targetStride);
                    Store(Sse2.UnpackHigh(u1, u3).AsUInt64(), to + 6L * targetStride, targetStride);
                }
            }
        }
        TransposeEdges(source, rows, columns, target, targetStride);

        static Vector128<byte> Row(byte* from, int row, int columns) => Vector128.CreateScalarUnsafe(*(ulong*)(from + (long)row * columns)).AsByte();

        static void Store(Vector128<ulong> twoColumns, byte* to, int stride)
        {
            *(ulong*)to = twoColumns.GetElement(0);
            *(ulong*)(to + stride) = twoColumns.GetElement(1);
        }
    }

    /// <summary>
    /// 32-bit values (floats, int32 sums) in blocks of 8 x 8 with AVX: eight row loads, unpacks, shuffles and lane permutes,
    /// eight column stores. Values are only moved, never computed on, so any 32-bit type goes through as float.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void TransposeWords(ReadOnlySpan<float> source, int rows, int columns, Span<float> target, int targetStride)
    {
        CheckBlockTranspose(source.Length, rows, columns, target.Length, targetStride);
        int fullRows = rows & ~7, fullColumns = columns & ~7;
        fixed (float* src = source, dst = target)
        {
            for (int r = 0; r < fullRows; r += 8)
            {
                for (int c = 0; c < fullColumns; c += 8)
                {
                    float* from = src + (long)r * columns + c;
                    var t0 = Avx.UnpackLow(Avx.LoadVector256(from), Avx.LoadVector256(from + columns));
                    var t1 = Avx.UnpackHigh(Avx.LoadVector256(from), Avx.LoadVector256(from + columns));
                    var t2 = Avx.UnpackLow(Avx.LoadVector256(from + 2 * columns), Avx.LoadVector256(from + 3 * columns));
                    var t3 = Avx.UnpackHigh(Avx.LoadVector256(from + 2 * columns), Avx.LoadVector256(from + 3 * columns));
                    var t4 = Avx.UnpackLow(Avx.LoadVector256(from + 4 * columns), Avx.LoadVector256(from + 5 * columns));
                    var t5 = Avx.UnpackHigh(Avx.LoadVector256(from + 4 * columns), Avx.LoadVector256(from + 5 * columns));
                    var t6 = Avx.UnpackLow(Avx.LoadVector256(from + 6 * columns), Avx.LoadVector256(from + 7 * columns));
                    var t7 = Avx.UnpackHigh(Avx.LoadVector256(from + 6 * columns), Avx.LoadVector256(from + 7 * columns));
                    var s0 = Avx.Shuffle(t0, t2, 0x44);
                    var s1 = Avx.Shuffle(t0, t2, 0xEE);
                    var s2 = Avx.Shuffle(t1, t3, 0x44);
                    var s3 = Avx.Shuffle(t1, t3, 0xEE);
                    var s4 = Avx.Shuffle(t4, t6, 0x44);
                    var s5 = Avx.Shuffle(t4, t6, 0xEE);
                    var s6 = Avx.Shuffle(t5, t7, 0x44);
                    var s7 = Avx.Shuffle(t5, t7, 0xEE);
                    float* to = dst + (long)c * targetStride + r;
                    Avx.Store(to, Avx.Permute2x128(s0, s4, 0x20));
                    Avx.Store(to + targetStride, Avx.Permute2x128(s1, s5, 0x20));
                    Avx.Store(to + 2L * targetStride, Avx.Permute2x128(s2, s6, 0x20));
                    Avx.Store(to + 3L * targetStride, Avx.Permute2x128(s3, s7, 0x20));
                    Avx.Store(to + 4L * targetStride, Avx.Permute2x128(s0, s4, 0x31));
                    Avx.Store(to + 5L * targetStride, Avx.Permute2x128(s1, s5, 0x31));
                    Avx.Store(to + 6L * targetStride, Avx.Permute2x128(s2, s6, 0x31));
                    Avx.Store(to + 7L * targetStride, Avx.Permute2x128(s3, s7, 0x31));
                }
            }
        }
        TransposeEdges(source, rows, columns, target, targetStride);
    }

    private static void CheckBlockTranspose(int sourceLength, int rows, int columns, int targetLength, int targetStride)
    {
        if (rows <= 0 || columns <= 0) return;
        if (sourceLength < (long)rows * columns) throw new ArgumentException("The source is too short.", "source");
        if (targetLength < (long)(columns - 1) * targetStride + rows) throw new ArgumentException("The target is too short.", "target");
    }

    /// <summary>What the 8 x 8 blocks leave: the last columns for every row, then the last rows for the columns the blocks did.</summary>
    private static void TransposeEdges<T>(ReadOnlySpan<T> source, int rows, int columns, Span<T> target, int targetStride)
    {
        int fullRows = rows & ~7, fullColumns = columns & ~7;
        if (fullColumns < columns)
            TransposeColumns(source[fullColumns..], rows, columns, target[(fullColumns * targetStride)..], targetStride, columns - fullColumns);
        if (fullRows < rows)
            TransposeColumns(source[(fullRows * columns)..], rows - fullRows, columns, target[fullRows..], targetStride, fullColumns);
    }

    /// <summary>The first <paramref name="count"/> columns of a rows x columns source, transposed.</summary>
    private static void TransposeColumns<T>(ReadOnlySpan<T> source, int rows, int columns, Span<T> target, int targetStride, int count)
    {
        for (int c = 0; c < count; c++)
        {
            var row = target.Slice(c * targetStride);
            for (int r = 0; r < rows; r++) row[r] = source[r * columns + c];
        }
    }

    /// <summary>
    /// Rows <c>[first, first + count)</c> of the patch matrix: for output pixel p, row p holds, for each kernel tap
    /// (depth, height, width order), the <paramref name="channels"/> values of the NHWC image at
    /// <paramref name="channelOffset"/> under that tap, or <paramref name="padding"/> where the tap falls in the padding
    /// (0 for float; the zero point for 8-bit images).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BuildPatches<T>(WindowGeometry g, ReadOnlySpan<T> nhwc, int imageChannels, int channelOffset, int channels, int first, int count, T padding, Span<T> patches)
        where T : unmanaged
    {
        int outH = g.Output[1], outW = g.Output[2];
        int inH = g.Input[1], inW = g.Input[2], inD = g.Input[0];
        int k = g.KernelSize * channels, kernelW = g.Kernel[2];
        bool whole = channels == imageChannels && g.Dilation[2] == 1;
        for (int p = first; p < first + count; p++)
        {
            int ow = p % outW, oh = p / outW % outH, od = p / (outW * outH);
            var row = patches.Slice((p - first) * k, k);
            int d0 = od * g.Stride[0] - g.PadBegin[0], h0 = oh * g.Stride[1] - g.PadBegin[1], w0 = ow * g.Stride[2] - g.PadBegin[2];
            int t = 0;
            for (int kd = 0; kd < g.Kernel[0]; kd++)
            {
                int id = d0 + kd * g.Dilation[0];
                bool dIn = (uint)id < (uint)inD;
                for (int kh = 0; kh < g.Kernel[1]; kh++)
                {
                    int ih = h0 + kh * g.Dilation[1];
                    bool hIn = dIn && (uint)ih < (uint)inH;
                    int line = (id * inH + ih) * inW;
                    if (whole && hIn && w0 >= 0 && w0 + kernelW <= inW)
                    {
                        // Every channel and adjacent taps: the whole kernel row is one contiguous run of the NHWC image.
                        nhwc.Slice((line + w0) * imageChannels, kernelW * channels).CopyTo(row.Slice(t, kernelW * channels));
                        t += kernelW * channels;
                        continue;
                    }
                    for (int kw = 0; kw < g.Kernel[2]; kw++, t += channels)
                    {
                        int iw = w0 + kw * g.Dilation[2];
                        var target = row.Slice(t, channels);
                        if (hIn && (uint)iw < (uint)inW)
                        {
                            var source = nhwc.Slice((line + iw) * imageChannels + channelOffset, channels);
                            // Short runs copy faster element by element than through CopyTo's call.
                            if (channels * Unsafe.SizeOf<T>() >= 32) source.CopyTo(target);
                            else for (int c = 0; c < channels; c++) target[c] = source[c];
                        }
                        else
                        {
                            target.Fill(padding);
                        }
                    }
                }
            }
        }
    }

    /// <summary>Splits <paramref name="pixels"/> GEMM rows into chunks: enough to run one per thread when the work is large, each bounded in memory.</summary>
    public static (int Chunks, int RowsPerChunk, bool Parallel) Chunking(int pixels, int depth, int threads)
    {
        const long MaxChunkFloats = 1 << 20;
        long floats = (long)pixels * Math.Max(1, depth);
        int chunks = (int)Math.Max(1, (floats + MaxChunkFloats - 1) / MaxChunkFloats);
        // One chunk per thread even for ResNet's 7x7 maps: patch building and the output stage then run in parallel
        // too, not only the GEMM (measured on ResNet18 at 2 threads: fp32 37.6 -> 33.5 ms, static int8 35.3 -> 27.8 ms).
        bool parallel = threads > 1 && pixels >= 24 * threads && floats >= 1 << 16;
        if (parallel) chunks = (chunks + threads - 1) / threads * threads;
        int rows = (pixels + chunks - 1) / chunks;
        rows = (rows + 5) / 6 * 6;
        return ((pixels + rows - 1) / rows, rows, parallel);
    }
}
