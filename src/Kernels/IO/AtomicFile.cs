namespace Quantize.Kernels.IO;

/// <summary>
/// A file written under a temporary name in its destination folder and renamed into place on
/// <see cref="Commit"/>, so that readers and crashed writers never see half a file. Disposing an
/// uncommitted file deletes the temporary.
/// </summary>
public sealed class AtomicFile : IDisposable
{
    private readonly FileStream _stream;
    private bool _finished;

    private AtomicFile(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        string folder = System.IO.Path.GetDirectoryName(Path)!;
        Directory.CreateDirectory(folder);
        TemporaryPath = System.IO.Path.Combine(folder, $".{System.IO.Path.GetFileName(Path)}.{Guid.NewGuid():N}.tmp");
        _stream = new FileStream(TemporaryPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
    }

    /// <summary>Starts writing <paramref name="path"/>.</summary>
    public static AtomicFile Create(string path) => new(path);

    /// <summary>Writes <paramref name="path"/> in one step: through a temporary file, then a rename.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        using var file = Create(path);
        write(file.Stream);
        file.Commit();
    }

    /// <summary>The final path.</summary>
    public string Path { get; }

    /// <summary>The temporary file being written.</summary>
    public string TemporaryPath { get; }

    /// <summary>The stream to write the content to.</summary>
    public Stream Stream => _stream;

    /// <summary>Flushes the content to disk and renames the temporary file over <see cref="Path"/>.</summary>
    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(TemporaryPath, Path, overwrite: true);
        _finished = true;
    }

    /// <summary>Deletes the temporary file unless committed.</summary>
    public void Dispose()
    {
        if (_finished) return;
        _stream.Dispose();
        try
        {
            File.Delete(TemporaryPath);
        }
        catch (IOException)
        {
            // Best effort: a stale temporary file is harmless and has a unique name.
        }
        _finished = true;
    }
}
