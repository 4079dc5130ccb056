using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Conv as <c>Y[m, p] = sum_k W[m, k] x Patch[k, p]</c> with the output channels as the GEMM's rows and the output
/// pixels as its columns: W (row-major [M, C x taps], exactly ONNX's weight layout) is packed once at load, and
/// each image's patch matrix is written straight into the GEMM's B panel layout (16 pixels per panel, K rows)
/// from the NCHW input. The product lands in NCHW: no layout changes, no second packing pass. A bias becomes one
/// more column of W against a row of ones, so it too is added inside the GEMM.
/// </summary>
internal static class ConvolutionPanels
{
    public const int PanelWidth = 16;

    /// <summary>
    /// Writes pixels <c>[first, first + count)</c> of one image's patch matrix as B panels: for panel q and
    /// k = (c, kd, kh, kw), 16 consecutive floats, one per pixel; zeros for taps in the padding and for pixels
    /// past the end; with <paramref name="onesRow"/>, a last k of ones (zeros past the end).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Pack(WindowGeometry g, float* image, int channels, int first, int count, float* panels, bool onesRow)
    {
        int inD = g.Input[0], inH = g.Input[1], inW = g.Input[2];
        int outH = g.Output[1], outW = g.Output[2];
        int kD = g.Kernel[0], kH = g.Kernel[1], kW = g.Kernel[2];
        int sd = g.Stride[0], sh = g.Stride[1], sw = g.Stride[2];
        int dd = g.Dilation[0], dh = g.Dilation[1], dw = g.Dilation[2];
        int depth = channels * kD * kH * kW + (onesRow ? 1 : 0);
        int panelCount = (count + PanelWidth - 1) / PanelWidth;
        int planeSize = inD * inH * inW;
        Span<int> segmentStart = stackalloc int[PanelWidth];
        Span<int> segmentLength = stackalloc int[PanelWidth];
        Span<int> segmentD = stackalloc int[PanelWidth];
        Span<int> segmentH = stackalloc int[PanelWidth];
        Span<int> segmentW = stackalloc int[PanelWidth];

        for (int q = 0; q < panelCount; q++)
        {
            float* panel = panels + (long)q * depth * PanelWidth;
            int p0 = first + q * PanelWidth;
            int valid = Math.Min(PanelWidth, first + count - p0);

            // Runs of pixels on the same output row: their windows slide along one input row.
            int segments = 0;
            for (int j = 0; j < valid;)
            {
                int p = p0 + j;
                int ow = p % outW, oh = p / outW % outH, od = p / (outW * outH);
                int length = Math.Min(valid - j, outW - ow);
                segmentStart[segments] = j;
                segmentLength[segments] = length;
                segmentD[segments] = od * sd - g.PadBegin[0];
                segmentH[segments] = oh * sh - g.PadBegin[1];
                segmentW[segments] = ow * sw - g.PadBegin[2];
                segments++;
                j += length;
            }

            float* row = panel;
            for (int c = 0; c < channels; c++)
            {
                float* plane = image + (long)c * planeSize;
                for (int kd = 0; kd < kD; kd++)
                {
                    for (int kh = 0; kh < kH; kh++)
                    {
                        for (int kw = 0; kw < kW; kw++, row += PanelWidth)
                        {
                            if (valid < PanelWidth)
                            {
                                for (int j = valid; j < PanelWidth; j++) row[j] = 0f;
                            }
                            for (int s = 0; s < segments; s++)
                            {
                                float* target = row + segmentStart[s];
                                int length = segmentLength[s];
                                int id = segmentD[s] + kd * dd, ih = segmentH[s] + kh * dh;
                                if ((uint)id >= (uint)inD || (uint)ih >= (uint)inH)
                                {
                                    for (int j = 0; j < length; j++) target[j] = 0f;
                                    continue;
                                }
                                float* line = plane + ((long)id * inH + ih) * inW;
                                int iw0 = segmentW[s] + kw * dw;
                                if (sw == 1 && length == PanelWidth && iw0 >= 0 && iw0 + PanelWidth <= inW)
                                {
                                    // The common case: a whole panel row from one stretch of one input row.
                                    Vector256.Store(Vector256.Load(line + iw0), target);
                                    Vector256.Store(Vector256.Load(line + iw0 + 8), target + 8);
                                    continue;
                                }
                                if (Avx2.IsSupported && sw <= 2)
                                {
                                    SegmentAvx2(line, inW, iw0, sw, target, length);
                                    continue;
                                }
                                Segment(line, inW, iw0, sw, target, length);
                            }
                        }
                    }
                }
            }
            if (onesRow)
            {
                for (int j = 0; j < PanelWidth; j++) row[j] = j < valid ? 1f : 0f;
            }
        }
    }

    /// <summary>One segment of a panel row: <c>target[j] = line[iw0 + j * stride]</c>, 0 outside <c>[0, width)</c>. The scalar twin.</summary>
    internal static unsafe void Segment(float* line, int width, int iw0, int stride, float* target, int length)
    {
        for (int j = 0; j < length; j++)
        {
            int iw = iw0 + j * stride;
            target[j] = (uint)iw < (uint)width ? line[iw] : 0f;
        }
    }

    /// <summary>
    /// <see cref="Segment"/> for strides 1 and 2 with vectors: the zeros of the padding, then the in-bounds run eight at a
    /// time (stride 2 deinterleaves sixteen inputs), the last few through masked loads and stores, which touch nothing
    /// outside the run. Segments are short on small feature maps (a 7 x 7 map gives runs of 7), where a scalar loop
    /// cost a third of the convolution.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe void SegmentAvx2(float* line, int width, int iw0, int stride, float* target, int length)
    {
        int j = 0;
        // Leading taps in the padding.
        for (; j < length && iw0 + j * stride < 0; j++) target[j] = 0f;
        // In bounds while iw0 + j * stride < width.
        int end = width - iw0 <= 0 ? j : Math.Min(length, (width - iw0 + stride - 1) / stride);
        if (stride == 1)
        {
            for (; j + 8 <= end; j += 8) Vector256.Store(Vector256.Load(line + iw0 + j), target + j);
            if (j < end)
            {
                var mask = Tail(end - j);
                Avx.MaskStore(target + j, mask, Avx.MaskLoad(line + iw0 + j, mask));
                j = end;
            }
        }
        else
        {
            // Sixteen inputs per eight outputs: the last input read is iw0 + 2j + 15, so stop while it is in bounds.
            for (; j + 8 <= end && iw0 + 2 * j + 16 <= width; j += 8)
                Vector256.Store(EvenLanes(Vector256.Load(line + iw0 + 2 * j), Vector256.Load(line + iw0 + 2 * j + 8)), target + j);
            for (; j < end; j++) target[j] = line[iw0 + 2 * j];
        }
        // Trailing taps in the padding.
        for (; j < length; j++) target[j] = 0f;
    }

    /// <summary>Lanes 0, 2, 4, 6 of <paramref name="low"/> then of <paramref name="high"/>: a stride-2 run of sixteen floats as eight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> EvenLanes(Vector256<float> low, Vector256<float> high)
    {
        var evens = Vector256.Create(0, 2, 4, 6, 1, 3, 5, 7);
        return Vector256.Create(Avx2.PermuteVar8x32(low, evens).GetLower(), Avx2.PermuteVar8x32(high, evens).GetLower());
    }

    // Eight lanes of -1 then eight of 0: the mask of the first n lanes starts at 8 - n.
    private static ReadOnlySpan<int> TailMasks => [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

    private static Vector256<float> Tail(int count) =>
        Vector256.LoadUnsafe(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(TailMasks), (nuint)(8 - count)).AsSingle();

    /// <summary>
    /// Pixel chunks for one image: whole panels, bounded in memory, a multiple of the thread count when worth it. A small map
    /// at several threads (7 x 7: three panels and a one-pixel one, which split 2 : 1.5) is one chunk instead, whose patches
    /// all threads pack and whose GEMM's threads share out row blocks (<c>ShareRows</c>).
    /// </summary>
    public static (int Chunks, bool ShareRows) Chunking(int pixels, int depth, int threads)
    {
        const long MaxPanelFloats = 1 << 18; // 1 MiB of panels per chunk
        int panels = (pixels + PanelWidth - 1) / PanelWidth;
        if (threads > 1 && panels < 4 * threads) return (1, true);
        int perChunk = (int)Math.Clamp(MaxPanelFloats / Math.Max(1, depth), PanelWidth, int.MaxValue);
        int chunks = (pixels + perChunk - 1) / perChunk;
        if (threads > 1 && (long)pixels * depth >= 1 << 16) chunks = (Math.Max(chunks, threads) + threads - 1) / threads * threads;
        return (Math.Min(chunks, panels), false);
    }

    /// <summary>
    /// The pixels of chunk <paramref name="chunk"/> of <paramref name="chunks"/>: whole panels shared out evenly, the short last
    /// panel with the last chunk. (Equal pixel counts rounded up to panels left 196 pixels as 112 + 84, 7 panels against 5.25.)
    /// </summary>
    public static (int First, int Count) ChunkRange(int pixels, int chunks, int chunk)
    {
        long panels = (pixels + PanelWidth - 1) / PanelWidth;
        int first = (int)(panels * chunk / chunks) * PanelWidth;
        int end = Math.Min(pixels, (int)(panels * (chunk + 1) / chunks) * PanelWidth);
        return (first, end - first);
    }
}
