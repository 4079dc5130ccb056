using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The fast form of <see cref="ConvolutionPanels.Pack"/> for 1-D and 2-D windows with strides 1 and 2 on AVX2: the input
/// rows a chunk reads are first copied, per channel, into a zero-bordered buffer, so that no tap needs a bounds test; each
/// lane of each panel then reads that buffer at an offset tabulated once per chunk plus the tap's. A panel of sixteen pixels
/// on one output row is two vector loads; one that spans rows (every panel of a 7 x 7 map) is two gathers. Cutting runs at
/// row and panel boundaries instead cost about 10 ns per run with masked stores: a third of the convolution on small maps.
/// <see cref="ConvolutionPanels.Pack"/>, which takes every geometry, is its twin: the bytes are the same.
/// </summary>
internal static class ConvolutionPanelsPadded
{
    private const int PanelWidth = ConvolutionPanels.PanelWidth;

    /// <summary>Whether <see cref="Pack"/> takes this geometry.</summary>
    public static bool Supports(WindowGeometry g) =>
        Avx2.IsSupported && g.Input[0] == 1 && g.Kernel[0] == 1 && g.Output[0] == 1 && g.Stride[2] <= 2;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Pack(WindowGeometry g, float* image, int channels, int first, int count, float* panels, bool onesRow)
    {
        int inH = g.Input[1], inW = g.Input[2], outW = g.Output[2];
        int kH = g.Kernel[1], kW = g.Kernel[2], sh = g.Stride[1], sw = g.Stride[2], dh = g.Dilation[1], dw = g.Dilation[2];
        int padTop = g.PadBegin[1], padLeft = g.PadBegin[2];
        int taps = kH * kW;
        int depth = channels * taps + (onesRow ? 1 : 0);
        int firstRow = first / outW, lastRow = (first + count - 1) / outW;

        // The input rows and columns the chunk's windows reach, in input coordinates (may start before 0 and end past the input).
        int rowStart = firstRow * sh - padTop, rowEnd = lastRow * sh - padTop + (kH - 1) * dh + 1;
        int columnStart = -padLeft, columnEnd = (outW - 1) * sw - padLeft + (kW - 1) * dw + 1;
        int rows = rowEnd - rowStart, width = columnEnd - columnStart;
        // Each lane of each panel reads the bordered rows at a fixed offset plus the tap's: offsets tabulated once per chunk.
        // A panel whose sixteen pixels lie on one output row reads one strided run (plain loads); others gather.
        int panelCount = (count + PanelWidth - 1) / PanelWidth;
        int[] offsets = ArrayPool<int>.Shared.Rent(panelCount * PanelWidth);
        bool[] contiguous = ArrayPool<bool>.Shared.Rent(panelCount);
        for (int j = 0; j < panelCount * PanelWidth; j++)
        {
            int pixel = first + Math.Min(j, count - 1); // lanes past the chunk read the last pixel again; they are cleared below
            int oh = pixel / outW, ow = pixel % outW;
            offsets[j] = (oh * sh - padTop - rowStart) * width + (ow * sw - padLeft - columnStart);
        }
        for (int q = 0; q < panelCount; q++)
        {
            int lanes = Math.Min(PanelWidth, count - q * PanelWidth);
            contiguous[q] = lanes == PanelWidth && offsets[q * PanelWidth + PanelWidth - 1] - offsets[q * PanelWidth] == (PanelWidth - 1) * sw;
        }
        // Slack past the end: a stride-2 panel reads thirty-two floats, the last one unused.
        float[] bordered = ArrayPool<float>.Shared.Rent(rows * width + 2 * PanelWidth);
        try
        {
            fixed (float* buffer = bordered)
            fixed (int* lanesAt = offsets)
            {
                for (int c = 0; c < channels; c++)
                {
                    Border(image + (long)c * inH * inW, inH, inW, rowStart, rows, columnStart, width, buffer);
                    for (int kh = 0; kh < kH; kh++)
                    {
                        for (int kw = 0; kw < kW; kw++)
                        {
                            int k = (c * kH + kh) * kW + kw;
                            float* tap = buffer + (long)kh * dh * width + kw * dw;
                            float* target = panels + (long)k * PanelWidth;
                            for (int q = 0; q < panelCount; q++, target += (long)depth * PanelWidth)
                            {
                                int* lane = lanesAt + q * PanelWidth;
                                Vector256<float> low, high;
                                if (contiguous[q])
                                {
                                    float* run = tap + lane[0];
                                    if (sw == 1)
                                    {
                                        low = Vector256.Load(run);
                                        high = Vector256.Load(run + 8);
                                    }
                                    else
                                    {
                                        low = ConvolutionPanels.EvenLanes(Vector256.Load(run), Vector256.Load(run + 8));
                                        high = ConvolutionPanels.EvenLanes(Vector256.Load(run + 16), Vector256.Load(run + 24));
                                    }
                                }
                                else
                                {
                                    low = Avx2.GatherVector256(tap, Vector256.Load(lane), 4);
                                    high = Avx2.GatherVector256(tap, Vector256.Load(lane + 8), 4);
                                }
                                Vector256.Store(low, target);
                                Vector256.Store(high, target + 8);
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(bordered);
            ArrayPool<int>.Shared.Return(offsets);
            ArrayPool<bool>.Shared.Return(contiguous);
        }

        // The last panel's lanes past the chunk are zeros; the bias row is ones where there are pixels.
        int valid = count - (panelCount - 1) * PanelWidth;
        float* last = panels + (long)(panelCount - 1) * depth * PanelWidth;
        if (valid < PanelWidth)
        {
            for (int k = 0; k < channels * taps; k++) new Span<float>(last + k * PanelWidth + valid, PanelWidth - valid).Clear();
        }
        if (onesRow)
        {
            for (int q = 0; q < panelCount; q++)
            {
                float* row = panels + ((long)q * depth + depth - 1) * PanelWidth;
                int lanes = q == panelCount - 1 ? valid : PanelWidth;
                for (int j = 0; j < PanelWidth; j++) row[j] = j < lanes ? 1f : 0f;
            }
        }
    }

    /// <summary>Rows [rowStart, rowStart + rows) and columns [columnStart, columnStart + width) of a plane, zeros outside it.</summary>
    private static unsafe void Border(float* plane, int inH, int inW, int rowStart, int rows, int columnStart, int width, float* target)
    {
        for (int r = 0; r < rows; r++)
        {
            var line = new Span<float>(target + (long)r * width, width);
            int ih = rowStart + r;
            if ((uint)ih >= (uint)inH)
            {
                line.Clear();
                continue;
            }
            int from = Math.Max(0, columnStart), to = Math.Min(inW, columnStart + width);
            line[..Math.Max(0, from - columnStart)].Clear();
            if (to > from) new ReadOnlySpan<float>(plane + (long)ih * inW + from, to - from).CopyTo(line[(from - columnStart)..]);
            int tail = Math.Max(0, from - columnStart) + Math.Max(0, to - from);
            line[tail..].Clear();
        }
    }
}
