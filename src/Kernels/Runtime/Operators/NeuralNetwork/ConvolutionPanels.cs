using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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
                                for (int j = 0; j < length; j++)
                                {
                                    int iw = iw0 + j * sw;
                                    target[j] = (uint)iw < (uint)inW ? line[iw] : 0f;
                                }
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

    /// <summary>Pixel chunks for one image: a multiple of the panel width, bounded in memory, and at least one per thread when worth it.</summary>
    public static (int Chunks, int PixelsPerChunk) Chunking(int pixels, int depth, int threads)
    {
        const long MaxPanelFloats = 1 << 18; // 1 MiB of panels per chunk
        int perChunk = (int)Math.Clamp(MaxPanelFloats / Math.Max(1, depth), PanelWidth, int.MaxValue);
        int chunks = (pixels + perChunk - 1) / perChunk;
        // With several threads, a multiple of the thread count keeps them equally busy.
        if (threads > 1 && (long)pixels * depth >= 1 << 16) chunks = (Math.Max(chunks, threads) + threads - 1) / threads * threads;
        perChunk = ((pixels + chunks - 1) / chunks + PanelWidth - 1) / PanelWidth * PanelWidth;
        return ((pixels + perChunk - 1) / perChunk, perChunk);
    }
}
