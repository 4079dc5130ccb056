using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;

namespace Quantize.Core.Tests.Calibration;

/// <summary>
/// Writes .npy and .npz files as the NumPy format document (numpy.lib.format) specifies them, for reader
/// tests: magic, version, header length, a Python dict literal padded with spaces to a multiple of 64 and
/// ended by a newline, then the raw little-endian data.
/// </summary>
internal static class NumpyWriter
{
    public static byte[] NpyOf<T>(string descr, int[] shape, T[] values, int major = 1) where T : struct =>
        Npy(descr, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), major);

    public static byte[] Npy(string descr, int[] shape, byte[] data, int major = 1, bool fortranOrder = false, string? header = null)
    {
        string shapeText = shape.Length == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";
        header ??= $"{{'descr': '{descr}', 'fortran_order': {(fortranOrder ? "True" : "False")}, 'shape': {shapeText}, }}";
        int lengthBytes = major == 1 ? 2 : 4;
        var encoding = major == 3 ? Encoding.UTF8 : Encoding.Latin1;
        int unpadded = 8 + lengthBytes + encoding.GetByteCount(header) + 1;
        header += new string(' ', (64 - unpadded % 64) % 64) + "\n";
        byte[] headerBytes = encoding.GetBytes(header);

        using var stream = new MemoryStream();
        stream.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0]);
        if (major == 1) stream.Write(BitConverter.GetBytes((ushort)headerBytes.Length));
        else stream.Write(BitConverter.GetBytes((uint)headerBytes.Length));
        stream.Write(headerBytes);
        stream.Write(data);
        return stream.ToArray();
    }

    /// <summary>An .npz archive: one <c>NAME.npy</c> entry per array, stored (as numpy.savez) or deflated (as savez_compressed).</summary>
    public static void Npz(string path, IEnumerable<(string Name, byte[] Npy)> arrays, bool compressed)
    {
        using var archive = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (name, npy) in arrays)
        {
            var entry = archive.CreateEntry(name + ".npy", compressed ? CompressionLevel.Optimal : CompressionLevel.NoCompression);
            using var stream = entry.Open();
            stream.Write(npy);
        }
    }
}

/// <summary>A fresh folder under the system temp folder, deleted on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("quantize-calibration-").FullName;

    public string this[string relative] => System.IO.Path.Combine(Path, relative);

    /// <summary>Creates (if needed) a subfolder and returns its path.</summary>
    public string Folder(string relative) => Directory.CreateDirectory(this[relative]).FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: the system cleans its temp folder.
        }
    }
}
