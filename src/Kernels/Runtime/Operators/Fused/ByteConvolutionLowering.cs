using System.Buffers;
using System.Runtime.CompilerServices;
using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// <see cref="ConvolutionLowering"/> for 8-bit images: NHWC transposes, patch rows (taps outer, channels inner)
/// whose padded taps hold the input's zero point (so they add nothing to <c>sum (x - zx)(w - zw)</c>), and the
/// weights packed for <see cref="Int8Gemm"/> in the same tap-major order.
/// </summary>
internal static class ByteConvolutionLowering
{
    /// <summary>
    /// Packs group <paramref name="group"/> of 8-bit Conv weights W [M, Cg, taps] as the GEMM's B: K = taps x Cg
    /// (tap-major, as <see cref="ConvolutionLowering.BuildPatches{T}"/> lays out a row), Mg columns, with the group's zero points;
    /// for activations mostly below 128 when <c>smallActivations</c> (see <see cref="SmallActivations"/>).
    /// </summary>
    public static PackedInt8Matrix PackWeights(ReadOnlySpan<byte> w, bool signed, int group, int outputsPerGroup, int channelsPerGroup, int taps, int[] zeroPoints,
        bool smallActivations = false)
    {
        int k = taps * channelsPerGroup;
        var rows = new byte[outputsPerGroup * k];
        for (int m = 0; m < outputsPerGroup; m++)
        {
            var source = w.Slice((group * outputsPerGroup + m) * k, k);
            var target = rows.AsSpan(m * k, k);
            for (int c = 0; c < channelsPerGroup; c++)
            {
                for (int t = 0; t < taps; t++) target[t * channelsPerGroup + c] = source[c * taps + t];
            }
        }
        int[] zps = zeroPoints.Length switch
        {
            0 => [0],
            1 => [zeroPoints[0]],
            _ => zeroPoints.AsSpan(group * outputsPerGroup, outputsPerGroup).ToArray(),
        };
        if (smallActivations) return PackedInt8Matrix.PackForMostlySmallActivations(rows, k, outputsPerGroup, zps, signed, transposed: true);
        return signed
            ? PackedInt8Matrix.Pack(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(rows), k, outputsPerGroup, zps, transposed: true)
            : PackedInt8Matrix.Pack(rows, k, outputsPerGroup, zps, transposed: true);
    }

    /// <summary>
    /// Whether 8-bit activations with this zero point are mostly below 128: uint8 with a zero point in the lowest quarter,
    /// as calibrated ReLU outputs are (in ResNet18 under 0.2% of them exceed 127). Only a guess at load that picks the
    /// weights' layout (<see cref="PackedInt8Matrix.PackForMostlySmallActivations"/>); results are exact either way.
    /// </summary>
    public static bool SmallActivations(int zeroPoint, TensorElementType? type) => type != TensorElementType.Int8 && zeroPoint is >= 0 and < 64;

    /// <summary>Receives one chunk of a lowered convolution: <paramref name="rows"/> output pixels from <paramref name="firstPixel"/> of image
    /// <paramref name="image"/>, group <paramref name="group"/>, as exact int32 sums, pixel-major (rows x outputs per group).</summary>
    public delegate void ChunkWriter(Span<int> sums, int rows, int image, int group, int firstPixel);

    /// <summary>
    /// The 8-bit convolution lowered to <see cref="Int8Gemm"/>: per image, NHWC once; per group, chunks of output pixels
    /// become patch rows (taps in the padding hold x's zero point), multiplied exactly against weights packed by
    /// <see cref="PackWeights"/>; <paramref name="write"/> stores each chunk. Chunks run on threads when there are enough.
    /// </summary>
    public static void Run(WindowGeometry g, Tensor x, int channels, int group, int outputs, int zeroPoint, PackedInt8Matrix[] packed, int threads, ChunkWriter write)
    {
        int batch = x.Shape[0], inSize = g.InputSize, pixels = g.OutputSize, channelsPerGroup = channels / group, outputsPerGroup = outputs / group;
        int depth = g.KernelSize * channelsPerGroup;
        if (pixels == 0 || batch == 0 || outputsPerGroup == 0) return;
        // A 1x1 window with unit strides and no padding reads the NHWC image itself as the patch matrix.
        bool pointwise = group == 1 && g.KernelSize == 1 && g.Stride.All(s => s == 1) && g.PadBegin.All(p => p == 0) && g.PadEnd.All(p => p == 0);
        var (chunks, rowsPerChunk, parallel) = ConvolutionLowering.Chunking(pixels, depth, threads);
        bool signed = x.ElementType == TensorElementType.Int8;
        byte[] nhwc = ArrayPool<byte>.Shared.Rent(inSize * channels);
        try
        {
            for (int n = 0; n < batch; n++)
            {
                ConvolutionLowering.Transpose(QuantizationInputs.Bytes(x).Slice(n * channels * inSize, channels * inSize), channels, inSize, nhwc, channels);
                for (int gi = 0; gi < group; gi++)
                {
                    int image = n, groupIndex = gi;
                    void Chunk(int chunk, int gemmThreads)
                    {
                        int first = chunk * rowsPerChunk, rows = Math.Min(rowsPerChunk, pixels - first);
                        byte[]? patches = pointwise ? null : ArrayPool<byte>.Shared.Rent(rows * depth);
                        int[] sums = ArrayPool<int>.Shared.Rent(rows * outputsPerGroup);
                        try
                        {
                            ReadOnlySpan<byte> a;
                            if (patches is null)
                            {
                                a = nhwc.AsSpan(first * channels, rows * channels);
                            }
                            else
                            {
                                ConvolutionLowering.BuildPatches(g, nhwc, channels, groupIndex * channelsPerGroup, channelsPerGroup, first, rows, (byte)zeroPoint, patches);
                                a = patches.AsSpan(0, rows * depth);
                            }
                            var acc = sums.AsSpan(0, rows * outputsPerGroup);
                            Int8Gemm.MultiplyInt32(a, rows, zeroPoint, signed, packed[groupIndex], acc, gemmThreads);
                            write(acc, rows, image, groupIndex, first);
                        }
                        finally
                        {
                            if (patches is not null) ArrayPool<byte>.Shared.Return(patches);
                            ArrayPool<int>.Shared.Return(sums);
                        }
                    }
                    if (parallel)
                        IntraOpThreads.For(chunks, threads, c => Chunk(c, 1));
                    else
                        for (int c = 0; c < chunks; c++) Chunk(c, threads);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(nhwc);
        }
    }

    /// <summary>
    /// One depthwise plane: <c>acc[o] = sum over the window's taps inside the image of (x - zx)(w[t] - zw)</c>
    /// (taps in the padding would add <c>(zx - zx) x ...</c> = 0, so they are skipped).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DepthwisePlane(WindowGeometry g, ReadOnlySpan<byte> source, bool signed, int zeroPoint, ReadOnlySpan<int> kernel, Span<int> acc)
    {
        int inH = g.Input[1], inW = g.Input[2], outD = g.Output[0], outH = g.Output[1], outW = g.Output[2];
        int kH = g.Kernel[1], kW = g.Kernel[2];
        int o = 0;
        for (int od = 0; od < outD; od++)
        {
            int fd = g.FirstTap[0][od], ed = g.EndTap[0][od];
            int d0 = od * g.Stride[0] - g.PadBegin[0];
            for (int oh = 0; oh < outH; oh++)
            {
                int fh = g.FirstTap[1][oh], eh = g.EndTap[1][oh];
                int h0 = oh * g.Stride[1] - g.PadBegin[1];
                for (int ow = 0; ow < outW; ow++, o++)
                {
                    int fw = g.FirstTap[2][ow], ew = g.EndTap[2][ow];
                    int w0 = ow * g.Stride[2] - g.PadBegin[2];
                    int sum = 0;
                    for (int kd = fd; kd < ed; kd++)
                    {
                        int id = d0 + kd * g.Dilation[0];
                        for (int kh = fh; kh < eh; kh++)
                        {
                            int line = (id * inH + h0 + kh * g.Dilation[1]) * inW + w0;
                            int tap = (kd * kH + kh) * kW;
                            for (int kw = fw; kw < ew; kw++)
                            {
                                byte raw = source[line + kw * g.Dilation[2]];
                                sum += ((signed ? (sbyte)raw : raw) - zeroPoint) * kernel[tap + kw];
                            }
                        }
                    }
                    acc[o] = sum;
                }
            }
        }
    }
}
